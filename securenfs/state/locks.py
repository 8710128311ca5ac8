"""Byte-range locks of one file (RFC 8881 §9): ranges per lock-owner with split and merge.

A range is ``[start, end)`` with ``end`` up to 2**64 ("to the end of the file": length
all ones, RFC 8881 §18.10.3).  Each owner's ranges on a file never overlap: setting a range
replaces the owner's overlapping ranges (an upgrade READ->WRITE or a downgrade WRITE->READ
of a sub-range splits the old range), and adjacent or overlapping ranges of the same type
merge.  Unlocking a sub-range splits a range in two.

Conflicts: another owner's overlapping range where either side is a write lock.  The
list is scanned; files rarely carry more than a few hundred ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from securenfs.nfs4.constants import Stat
from securenfs.nfs4.errors import Nfs4Error

#: One past the largest byte offset (length NFS4_UINT64_MAX means "to the end").
END: Final = 1 << 64
_ALL_ONES: Final = (1 << 64) - 1


def lock_range(offset: int, length: int) -> tuple[int, int]:
    """``[start, end)`` of a LOCK/LOCKT/LOCKU range; NFS4ERR_INVAL for a zero length or a
    range that passes 2**64 - 1 (RFC 8881 §18.10.4)."""
    if length == 0:
        raise Nfs4Error(Stat.INVAL, "lock length 0")
    if length == _ALL_ONES:
        return offset, END
    end = offset + length
    if end > _ALL_ONES:
        raise Nfs4Error(Stat.INVAL, f"lock range {offset}+{length} passes the largest offset")
    return offset, end


def wire_length(start: int, end: int) -> int:
    return _ALL_ONES if end >= END else end - start


@dataclass(slots=True)
class Range:
    owner: object
    start: int
    end: int
    write: bool


@dataclass(slots=True)
class FileLocks:
    ranges: list[Range] = field(default_factory=list)

    def conflict(self, owner: object, start: int, end: int, write: bool) -> Range | None:
        """The first range of another owner that conflicts with the request, or None."""
        for r in self.ranges:
            if r.owner is not owner and r.start < end and start < r.end and (write or r.write):
                return r
        return None

    def owned(self, owner: object) -> list[Range]:
        return [r for r in self.ranges if r.owner is owner]

    def _cut(self, owner: object, start: int, end: int) -> None:
        """Remove ``[start, end)`` from the owner's ranges (splitting as needed)."""
        out: list[Range] = []
        for r in self.ranges:
            if r.owner is not owner or r.end <= start or end <= r.start:
                out.append(r)
                continue
            if r.start < start:
                out.append(Range(owner, r.start, start, r.write))
            if end < r.end:
                out.append(Range(owner, end, r.end, r.write))
        self.ranges = out

    def set(self, owner: object, start: int, end: int, write: bool) -> None:
        """Lock ``[start, end)`` for ``owner`` (the caller checked conflicts)."""
        self._cut(owner, start, end)
        # Merge with the owner's adjacent ranges of the same type.
        mine: list[Range] = []
        rest: list[Range] = []
        for r in self.ranges:
            if r.owner is owner and r.write == write and r.end >= start and end >= r.start:
                mine.append(r)
            else:
                rest.append(r)
        for r in mine:
            start, end = min(start, r.start), max(end, r.end)
        rest.append(Range(owner, start, end, write))
        self.ranges = rest

    def unlock(self, owner: object, start: int, end: int) -> None:
        self._cut(owner, start, end)

    def release(self, owner: object) -> None:
        self.ranges = [r for r in self.ranges if r.owner is not owner]

    def holds(self, owner: object) -> bool:
        return any(r.owner is owner for r in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)
