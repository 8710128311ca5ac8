"""Share reservations: the access and deny modes of OPEN (RFC 8881 §9.7, §18.16, §18.18).

Each open stateid (one per open-owner and file) holds an access mask and a deny mask.  An OPEN
is refused with NFS4ERR_SHARE_DENIED when what it asks to access is denied by another open of
the file, or when what it asks to deny is being accessed by another open.  An open-owner's own
stateid never conflicts with itself: a second OPEN by the same owner is an upgrade (the union).

The file's union of access and deny bits is kept as per-bit counters, so a conflict test is a
few integer operations whatever the number of opens.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error


class ShareAccess(enum.IntFlag):
    """OPEN4_SHARE_ACCESS_* (RFC 8881 §18.16.1)."""

    READ = 0x1
    WRITE = 0x2
    BOTH = 0x3


class ShareDeny(enum.IntFlag):
    """OPEN4_SHARE_DENY_*."""

    NONE = 0x0
    READ = 0x1
    WRITE = 0x2
    BOTH = 0x3


#: The "want" and signal bits NFSv4.1 carries in share_access (delegation wishes, §18.16.3);
#: they are not access modes and are masked off before share checks.
SHARE_ACCESS_WANT_MASK: Final = 0xFF00
SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL: Final = 0x10000
SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED: Final = 0x20000
_KNOWN_ACCESS: Final = 0x3 | SHARE_ACCESS_WANT_MASK | 0x30000


def validate_share(access: int, deny: int) -> tuple[int, int]:
    """The (access, deny) modes of an OPEN or OPEN_DOWNGRADE, want bits removed.

    NFS4ERR_INVAL for no access mode, unknown bits, or an unknown deny mode.
    """
    if access & ~_KNOWN_ACCESS or deny & ~0x3:
        raise Nfs4Error(Stat.INVAL, f"share_access {access:#x} / share_deny {deny:#x} has unknown bits")
    a = access & 0x3
    if not a:
        raise Nfs4Error(Stat.INVAL, "share_access without READ or WRITE")
    return a, deny


def achievable(target: tuple[int, int], used: Iterable[tuple[int, int]]) -> bool:
    """Whether (access, deny) is the union of some subset of the OPENs in ``used``.

    RFC 8881 §18.18.3: OPEN_DOWNGRADE's modes must be exactly such a union.  The largest
    subset that stays within the target has the largest union; the target is reachable iff
    that union equals it.
    """
    ta, td = target
    ua = ud = 0
    for a, d in used:
        if a & ~ta == 0 and d & ~td == 0:
            ua |= a
            ud |= d
    return (ua, ud) == (ta, td)


@dataclass(slots=True)
class FileShares:
    """The share reservations on one file: holder -> (access, deny), and the unions."""

    holders: dict[object, tuple[int, int]] = field(default_factory=dict)
    # Counters: [read, write] of access and of deny over all holders.
    _acc: list[int] = field(default_factory=lambda: [0, 0])
    _deny: list[int] = field(default_factory=lambda: [0, 0])

    def _count(self, access: int, deny: int, delta: int) -> None:
        if access & 1:
            self._acc[0] += delta
        if access & 2:
            self._acc[1] += delta
        if deny & 1:
            self._deny[0] += delta
        if deny & 2:
            self._deny[1] += delta

    @staticmethod
    def _mask(counts: list[int]) -> int:
        return (1 if counts[0] else 0) | (2 if counts[1] else 0)

    @property
    def access(self) -> int:
        """Union of the access modes of every open of the file."""
        return self._mask(self._acc)

    @property
    def deny(self) -> int:
        """Union of the deny modes of every open of the file."""
        return self._mask(self._deny)

    def others(self, holder: object) -> tuple[int, int]:
        """(access, deny) unions of every holder except ``holder``."""
        acc, deny = list(self._acc), list(self._deny)
        mine = self.holders.get(holder)
        if mine is not None:
            a, d = mine
            acc[0] -= a & 1
            acc[1] -= (a >> 1) & 1
            deny[0] -= d & 1
            deny[1] -= (d >> 1) & 1
        return self._mask(acc), self._mask(deny)

    def conflicting_holders(self, holder: object, access: int, deny: int) -> list[object]:
        """Other holders whose reservation conflicts with (access, deny) (a scan: used only
        once a conflict is known, to find courtesy clients to revoke)."""
        return [h for h, (a, d) in self.holders.items()
                if h is not holder and (a & deny or d & access)]

    def conflicts(self, holder: object, access: int, deny: int) -> bool:
        oa, od = self.others(holder)
        return bool(access & od or deny & oa)

    def set(self, holder: object, access: int, deny: int) -> None:
        """Record ``holder``'s modes (replacing what it had)."""
        old = self.holders.get(holder)
        if old is not None:
            self._count(*old, -1)
        self.holders[holder] = (access, deny)
        self._count(access, deny, +1)

    def remove(self, holder: object) -> None:
        old = self.holders.pop(holder, None)
        if old is not None:
            self._count(*old, -1)

    def __bool__(self) -> bool:
        return bool(self.holders)


def check_open(shares: FileShares, holder: object, access: int, deny: int) -> None:
    """NFS4ERR_SHARE_DENIED when (access, deny) conflicts with another holder (§9.7)."""
    if shares.conflicts(holder, access, deny):
        oa, od = shares.others(holder)
        raise Nfs4Error(Stat.SHARE_DENIED,
                        f"access {access:#x}/deny {deny:#x} conflicts with other opens (access {oa:#x}, deny {od:#x})")
