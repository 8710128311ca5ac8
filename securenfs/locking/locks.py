"""Byte-range locks of one file (RFC 8881 §9, §18.10-18.12).

Each lock-owner's locks on a file are a sorted list of disjoint half-open ranges
``[start, end)`` with a type (READ or WRITE).  Locking a range replaces whatever the owner had
on it (an upgrade or downgrade is just that, done atomically: POSIX semantics, §9.3), then
merges with touching ranges of the same type; unlocking cuts the range out, splitting a lock
that covers it.  Ranges of different owners are checked for conflicts: two locks conflict when
they overlap and at least one is a WRITE lock.

Ranges end at 2**64 at most.  A length of all ones means "to the end of the file" and is the
range up to 2**64; a conflict on such a range is reported with length all ones again.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error

NFS4_UINT64_MAX: Final = 0xFFFFFFFFFFFFFFFF
#: Exclusive end of the byte space: the end of every "to EOF" lock.
END_OF_SPACE: Final = 1 << 64

#: A lock-owner as the lock table knows it: (clientid, owner bytes) (RFC 8881 §9.1.1).
OwnerKey = tuple[int, bytes]


class LockType(enum.IntEnum):
    """nfs_lock_type4 (RFC 8881 §18.10.1).  The W forms ask the server to remember a blocked
    request for fairness; they are granted or denied exactly like the plain forms here."""

    READ_LT = 1
    WRITE_LT = 2
    READW_LT = 3
    WRITEW_LT = 4

    @property
    def base(self) -> LockType:
        return LockType.READ_LT if self in (LockType.READ_LT, LockType.READW_LT) else LockType.WRITE_LT

    @property
    def blocking(self) -> bool:
        return self >= LockType.READW_LT


def lock_type(value: int) -> LockType:
    try:
        return LockType(value)
    except ValueError:
        raise Nfs4Error(Stat.INVAL, f"unknown lock type {value}") from None


def lock_range(offset: int, length: int) -> tuple[int, int]:
    """[start, end) of a LOCK, LOCKT or LOCKU range (RFC 8881 §18.10.3).

    NFS4ERR_INVAL for a zero length, and for a length other than all ones whose end passes
    2**64.
    """
    if not 0 <= offset <= NFS4_UINT64_MAX or not 0 <= length <= NFS4_UINT64_MAX:
        raise Nfs4Error(Stat.INVAL, f"offset {offset} / length {length} outside 64 bits")
    if length == 0:
        raise Nfs4Error(Stat.INVAL, "lock length 0")
    if length == NFS4_UINT64_MAX:
        return offset, END_OF_SPACE
    end = offset + length
    if end > END_OF_SPACE:
        raise Nfs4Error(Stat.INVAL, f"lock range offset {offset} + length {length} passes 2**64")
    return offset, end


def wire_length(start: int, end: int) -> int:
    """The length4 a range is reported with (all ones for a range to the end)."""
    return NFS4_UINT64_MAX if end >= END_OF_SPACE else end - start


@dataclass(slots=True, frozen=True)
class LockConflict:
    """What NFS4ERR_DENIED carries (LOCK4denied, RFC 8881 §18.10.2)."""

    offset: int
    length: int
    locktype: LockType
    clientid: int
    owner: bytes

    @property
    def key(self) -> OwnerKey:
        return (self.clientid, self.owner)


class LockDenied(Nfs4Error):
    """NFS4ERR_DENIED with the conflicting lock."""

    def __init__(self, conflict: LockConflict):
        super().__init__(Stat.DENIED, f"conflicts with {conflict.locktype.name} lock at {conflict.offset} "
                                      f"length {conflict.length:#x} of client {conflict.clientid:#018x}")
        self.conflict = conflict


#: One lock: (start, end, type) with type READ_LT or WRITE_LT.
Range = tuple[int, int, LockType]


def _start(r: Range) -> int:
    return r[0]


@dataclass(slots=True)
class FileLocks:
    """All byte-range locks on one file, per lock-owner."""

    owners: dict[OwnerKey, list[Range]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.owners)

    def ranges(self, owner: OwnerKey) -> list[Range]:
        return list(self.owners.get(owner, ()))

    def has_locks(self, owner: OwnerKey) -> bool:
        return owner in self.owners

    def conflicts(self, owner: OwnerKey | None, start: int, end: int, locktype: LockType) -> Iterator[LockConflict]:
        """One conflicting lock per other owner holding one (no side effects)."""
        write = locktype.base is LockType.WRITE_LT
        for key, ranges in self.owners.items():
            if key == owner:
                continue
            i = bisect_right(ranges, start, key=_start) - 1
            i = max(i, 0)
            n = len(ranges)
            while i < n:
                a, b, t = ranges[i]
                if a >= end:
                    break
                if b > start and (write or t is LockType.WRITE_LT):
                    yield LockConflict(a, wire_length(a, b), t, key[0], key[1])
                    break
                i += 1

    def test(self, owner: OwnerKey | None, start: int, end: int, locktype: LockType) -> LockConflict | None:
        return next(self.conflicts(owner, start, end, locktype), None)

    def _apply(self, owner: OwnerKey, start: int, end: int, locktype: LockType | None) -> bool:
        """Set [start, end) of ``owner`` to ``locktype`` (None: unlocked).  Returns whether
        anything changed."""
        ranges = self.owners.get(owner)
        if ranges is None:
            if locktype is None:
                return False
            self.owners[owner] = [(start, end, locktype)]
            return True
        lo = bisect_right(ranges, start, key=_start) - 1
        lo = max(lo, 0)
        while lo > 0 and ranges[lo - 1][1] >= start:
            lo -= 1
        hi = lo
        n = len(ranges)
        # Every range overlapping or touching [start, end].
        while hi < n and ranges[hi][0] <= end:
            hi += 1
        while lo < hi and ranges[lo][1] < start:
            lo += 1
        old = ranges[lo:hi]
        pieces: list[Range] = []
        for a, b, t in old:
            if a < start:
                pieces.append((a, min(b, start), t))
        if locktype is not None:
            pieces.append((start, end, locktype))
        for a, b, t in old:
            if b > end:
                pieces.append((max(a, end), b, t))
        merged: list[Range] = []
        for p in pieces:
            if merged and merged[-1][2] is p[2] and merged[-1][1] >= p[0]:
                q = merged[-1]
                merged[-1] = (q[0], max(q[1], p[1]), q[2])
            else:
                merged.append(p)
        if merged == old:
            return False
        ranges[lo:hi] = merged
        if not ranges:
            del self.owners[owner]
        return True

    def lock(self, owner: OwnerKey, start: int, end: int, locktype: LockType) -> bool:
        """Grant (no conflict check here: the caller tested first)."""
        return self._apply(owner, start, end, locktype.base)

    def unlock(self, owner: OwnerKey, start: int, end: int) -> bool:
        return self._apply(owner, start, end, None)

    def drop_owner(self, owner: OwnerKey) -> None:
        self.owners.pop(owner, None)
