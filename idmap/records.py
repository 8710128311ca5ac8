"""Records passed between the backends, the cache and the callers."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class UserRec:
    """A POSIX user as a backend knows it."""

    name: str
    uid: int
    gid: int
    # Opaque handle the backend uses to find the user's groups (an LDAP DN, for example).
    ref: str | None = None


@dataclass(slots=True, frozen=True)
class GroupRec:
    """A POSIX group as a backend knows it."""

    name: str
    gid: int


class CacheState(enum.Enum):
    """Where an answer came from, for the CLI and metrics."""

    MISS = "miss"  # asked the backends just now
    HIT = "hit"  # fresh cache entry
    STALE = "stale"  # expired entry served because every backend is unreachable
    NONE = "none"  # not cacheable (numeric, policy decisions)


@dataclass(slots=True, frozen=True)
class Mapping:
    """Result of a name <-> id lookup.

    ``name`` is the full NFSv4 string (``alice@example.com``, or digits for a numeric
    owner), ``source`` the backend that answered (``ldap``, ``static``, ``nss``) or
    ``numeric``/``anon`` for policy answers, ``reason`` explains an ``anon`` answer.
    """

    id: int
    name: str
    source: str
    cache: CacheState = CacheState.NONE
    reason: str | None = None


@dataclass(slots=True, frozen=True)
class Identity:
    """The credentials a request from a Kerberos principal runs with.

    ``groups`` holds the supplementary gids (sorted, without duplicates; may include the
    primary gid).  ``source`` is the backend that answered, or ``anon``/``machine`` for
    policy answers, in which case ``reason`` says why.
    """

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str | None
    source: str
    cache: CacheState = CacheState.NONE
    reason: str | None = None
