"""Directory backends.  Each is synchronous (it runs in the mapper's thread pool) and
answers a record, ``None`` for an authoritative "not found", or raises
:class:`idmap.errors.BackendUnavailable` when it cannot answer."""

from idmap.backends.base import Backend

__all__ = ["Backend"]
