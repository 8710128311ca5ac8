"""Primitives of NFSv4.1 open and lock state: no XDR, no network (RFC 8881 §8, §9).

The one state manager is :class:`securenfs.state.opens.StateManager`; it is built from
these pieces:

* :mod:`~securenfs.locking.stateids` — stateid4 values, the special stateids (anonymous,
  read-bypass, current, invalid), seqid arithmetic and the table of issued stateids
  (``other`` = boot epoch + 8 random bytes, so earlier boots answer NFS4ERR_STALE_STATEID).
* :mod:`~securenfs.locking.shares` — share reservations (access/deny counters per file) and
  the OPEN_DOWNGRADE rule.
* :mod:`~securenfs.locking.locks` — byte-range locks of one file per lock-owner (split,
  merge, upgrade, downgrade, conflicts, the LOCK4denied answer) and range validation.
* :mod:`~securenfs.locking.ofd` — the kernel's open-file-description locks that mirror the
  NFS byte-range locks (F_OFD_SETLK, F_OFD_GETLK), so local processes see them.
* :mod:`~securenfs.locking.filecache` — the bounded cache of open descriptors used by READ,
  WRITE and COMMIT (the one part used from pool threads; it has its own lock).

See docs/locking.md for the state model.
"""

from securenfs.locking.filecache import CachedFd, OpenFileCache
from securenfs.locking.locks import (
    NFS4_UINT64_MAX,
    FileLocks,
    LockConflict,
    LockDenied,
    LockType,
    lock_range,
    wire_length,
)
from securenfs.locking.shares import FileShares, ShareAccess, ShareDeny, validate_share
from securenfs.locking.stateids import (
    ANONYMOUS,
    CURRENT,
    INVALID,
    READ_BYPASS,
    Revoked,
    Special,
    Stateid,
    StateKind,
    next_seqid,
    resolve_current,
    special_kind,
)

__all__ = [
    "ANONYMOUS", "CURRENT", "INVALID", "NFS4_UINT64_MAX", "READ_BYPASS",
    "CachedFd", "FileLocks", "FileShares", "LockConflict", "LockDenied", "LockType", "OpenFileCache",
    "Revoked", "ShareAccess", "ShareDeny", "Special", "StateKind", "Stateid", "lock_range", "next_seqid",
    "resolve_current", "special_kind", "validate_share", "wire_length",
]
