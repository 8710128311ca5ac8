"""Open-owners, lock-owners and the state objects their stateids name (RFC 8881 §8.1, §9.1).

Open-owners and lock-owners are different types with different tables, never confused: an
open-owner opens files (OPEN, OPEN_DOWNGRADE, CLOSE), a lock-owner holds byte-range locks
(LOCK, LOCKU).  Both are (clientid, opaque owner bytes) pairs chosen by the client.

* One :class:`OpenState` exists per (open-owner, file): its stateid is returned by OPEN and
  upgraded by later OPENs of the same owner.
* One :class:`LockState` exists per (lock-owner, file): it is created by the first LOCK, which
  names the open stateid it derives from (``open_to_lock_owner4``); later LOCKs name the lock
  stateid itself (``exist_lock_owner4``).  It belongs to that open: CLOSE ends it.

In NFSv4.1 the owner seqids of OPEN/CLOSE/LOCK/LOCKU are ignored (sessions give exactly-once
semantics, RFC 8881 §8.13 and §18.16.3); only the stateid seqids below are checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from securenfs.locking.locks import OwnerKey
from securenfs.locking.stateids import Revoked, Stateid, StateKind, next_seqid

#: Opaque owner strings are at most NFS4_OPAQUE_LIMIT bytes (RFC 8881 §3.2).
OWNER_LIMIT: Final = 1024

#: What a file is known by here: the file handle bytes (persistent and unique per file).
FileKey = bytes


@dataclass(slots=True, eq=False)
class OpenOwner:
    clientid: int
    owner: bytes
    #: file -> this owner's open of it.
    opens: dict[FileKey, OpenState] = field(default_factory=dict)

    @property
    def key(self) -> OwnerKey:
        return (self.clientid, self.owner)


@dataclass(slots=True, eq=False)
class LockOwner:
    clientid: int
    owner: bytes
    #: file -> this owner's lock stateid on it.
    states: dict[FileKey, LockState] = field(default_factory=dict)

    @property
    def key(self) -> OwnerKey:
        return (self.clientid, self.owner)


@dataclass(slots=True, eq=False)
class OpenState:
    """An open stateid: an open-owner's share reservation on a file."""

    other: bytes
    clientid: int
    owner: OpenOwner
    file: FileKey
    access: int
    deny: int
    seqid: int = 1
    kind: StateKind = StateKind.OPEN
    revoked: Revoked = Revoked.NO
    #: Every (access, deny) pair an OPEN asked for, for OPEN_DOWNGRADE (RFC 8881 §18.18.3).
    used: set[tuple[int, int]] = field(default_factory=set)
    #: Lock stateids derived from this open.
    locks: dict[OwnerKey, LockState] = field(default_factory=dict)

    def bump(self) -> Stateid:
        self.seqid = next_seqid(self.seqid)
        return self.stateid

    @property
    def stateid(self) -> Stateid:
        return Stateid(self.seqid, self.other)


@dataclass(slots=True, eq=False)
class LockState:
    """A lock stateid: one lock-owner's byte-range locks on a file."""

    other: bytes
    clientid: int
    owner: LockOwner
    file: FileKey
    open: OpenState
    seqid: int = 1
    kind: StateKind = StateKind.LOCK
    revoked: Revoked = Revoked.NO

    def bump(self) -> Stateid:
        self.seqid = next_seqid(self.seqid)
        return self.stateid

    @property
    def stateid(self) -> Stateid:
        return Stateid(self.seqid, self.other)


@dataclass(slots=True, frozen=True)
class OpenToLockOwner:
    """open_to_lock_owner4: the first LOCK of a lock-owner on a file (RFC 8881 §18.10.1).
    The seqids are carried for completeness and ignored in 4.1; so is ``clientid`` of the
    lock_owner4 (the session's client is used, §18.10.3)."""

    open_stateid: Stateid | bytes
    lock_owner: bytes
    open_seqid: int = 0
    lock_seqid: int = 0


@dataclass(slots=True, frozen=True)
class ExistLockOwner:
    """exist_lock_owner4: a later LOCK naming the lock stateid."""

    lock_stateid: Stateid | bytes
    lock_seqid: int = 0
