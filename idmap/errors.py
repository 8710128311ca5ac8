"""Exceptions of the ID mapper.

The three outcomes of every lookup are: found (a value is returned), not found
(:class:`IdmapNotFound`, an authoritative answer: the name or id does not exist) and
unavailable (:class:`IdmapUnavailable`, a backend could not be asked; nothing may be
concluded and nothing is cached).  The NFS server maps them to NFS4_OK,
NFS4ERR_BADOWNER and NFS4ERR_DELAY respectively.
"""

from __future__ import annotations


class IdmapError(Exception):
    """Base class of every error raised by :mod:`idmap`."""


class IdmapNotFound(IdmapError):
    """The backends answered and none knows the name or id (NFS4ERR_BADOWNER).

    ``reason`` says why in words an administrator can act on.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class IdmapUnavailable(IdmapError):
    """No backend could give an answer right now (NFS4ERR_DELAY: the client retries)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class BackendUnavailable(IdmapError):
    """Raised by a backend when it cannot answer (server down, timeout, bind failure).

    Distinct from a ``None`` result, which means "authoritatively not found".
    """
