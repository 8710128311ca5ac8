"""stateid4 values, the special stateids and the table of issued stateids (RFC 8881 §8.2).

A stateid is 16 bytes on the wire: a 32-bit ``seqid`` and a 12-byte ``other``.  Our ``other`` is
the server's boot epoch (4 bytes, big endian) followed by 8 random bytes, so

* a stateid issued before a restart is recognised by its epoch (NFS4ERR_STALE_STATEID), and
* a stateid cannot be guessed: one client cannot reach another's state by trying values, and
  even a correct guess is refused because every lookup also checks the owning client id.

The table maps ``other`` to the state object; lookups are one dict access (every READ and
WRITE carries a stateid, RFC 8881 §8.2.4).
"""

from __future__ import annotations

import enum
import secrets
import struct
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error

#: Largest seqid; the one after it is 1, never 0 (RFC 8881 §8.2.2).
SEQID_MAX: Final = 0xFFFFFFFF
STATEID_SIZE: Final = 16
OTHER_SIZE: Final = 12

_ZERO_OTHER: Final = bytes(OTHER_SIZE)
_ONES_OTHER: Final = b"\xff" * OTHER_SIZE
_SEQ = struct.Struct(">I")


def next_seqid(seqid: int) -> int:
    """The seqid after ``seqid``: +1, wrapping from 0xffffffff to 1 (RFC 8881 §8.2.2)."""
    return 1 if seqid >= SEQID_MAX else seqid + 1


@dataclass(slots=True, frozen=True)
class Stateid:
    """One stateid4 value as sent or returned."""

    seqid: int
    other: bytes

    def pack(self) -> bytes:
        return _SEQ.pack(self.seqid) + self.other

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> Stateid:
        if len(data) != STATEID_SIZE:
            raise Nfs4Error(Stat.BAD_STATEID, f"stateid of {len(data)} bytes")
        b = bytes(data)
        return cls(_SEQ.unpack_from(b)[0], b[4:])

    @classmethod
    def coerce(cls, sid: Stateid | bytes | bytearray | memoryview) -> Stateid:
        return sid if isinstance(sid, Stateid) else cls.unpack(sid)

    def __str__(self) -> str:
        return f"{self.seqid}:{self.other.hex()}"


#: The special stateids of RFC 8881 §8.2.3.
ANONYMOUS: Final = Stateid(0, _ZERO_OTHER)
READ_BYPASS: Final = Stateid(SEQID_MAX, _ONES_OTHER)
CURRENT: Final = Stateid(1, _ZERO_OTHER)
#: "other" zero and seqid all ones: reserved as invalid; CLOSE returns it in 4.1 (§18.2.4).
INVALID: Final = Stateid(SEQID_MAX, _ZERO_OTHER)


class Special(enum.Enum):
    """What a special stateid stands for."""

    ANONYMOUS = "anonymous"
    READ_BYPASS = "read-bypass"
    CURRENT = "current"


def special_kind(sid: Stateid) -> Special | None:
    """Which special stateid ``sid`` is, or None for an ordinary one.

    Any other value whose ``other`` is all zeros or all ones (including the reserved invalid
    stateid) is not special but bad: :meth:`StateidTable.lookup` answers NFS4ERR_BAD_STATEID.
    """
    if sid.other == _ZERO_OTHER:
        if sid.seqid == 0:
            return Special.ANONYMOUS
        if sid.seqid == 1:
            return Special.CURRENT
    elif sid.other == _ONES_OTHER and sid.seqid == SEQID_MAX:
        return Special.READ_BYPASS
    return None


def resolve_current(sid: Stateid | bytes, current: Stateid | bytes | None) -> Stateid:
    """Replace the current-stateid marker by the COMPOUND's current stateid
    (RFC 8881 §16.2.3.1.2); NFS4ERR_BAD_STATEID when there is none."""
    s = Stateid.coerce(sid)
    if special_kind(s) is Special.CURRENT:
        if current is None:
            raise Nfs4Error(Stat.BAD_STATEID, "current stateid used but none is set")
        return Stateid.coerce(current)
    return s


class Revoked(enum.IntEnum):
    """Why a stateid no longer works; the value is the status it answers (RFC 8881 §8.2.4)."""

    NO = 0
    EXPIRED = Stat.EXPIRED
    ADMIN = Stat.ADMIN_REVOKED
    DELEG = Stat.DELEG_REVOKED


class StateKind(enum.IntEnum):
    OPEN = 1
    LOCK = 2
    DELEG = 3


class StateRecord(Protocol):
    """What the table needs from a state object (OpenState, LockState)."""

    clientid: int
    kind: StateKind
    seqid: int
    revoked: Revoked


S = TypeVar("S", bound=StateRecord)


def _seqid_status(sent: int, current: int) -> int:
    """OK, NFS4ERR_OLD_STATEID or NFS4ERR_BAD_STATEID for a non-zero ``sent`` seqid.

    Compared in serial-number arithmetic so a seqid from just before a wrap (0xfffffffe when
    the current one is 2) is old, not "from the future" (RFC 8881 §8.2.2).
    """
    if sent == current:
        return Stat.OK
    ahead = (sent - current) & SEQID_MAX
    return Stat.BAD_STATEID if ahead < 0x80000000 else Stat.OLD_STATEID


class StateidTable(Generic[S]):
    """Issued stateids of one server instance: ``other`` -> state object."""

    def __init__(self, boot_epoch: int):
        self.boot_epoch = boot_epoch & SEQID_MAX
        self._epoch = _SEQ.pack(self.boot_epoch)
        self._by_other: dict[bytes, S] = {}

    def __len__(self) -> int:
        return len(self._by_other)

    def new_other(self) -> bytes:
        while True:
            other = self._epoch + secrets.token_bytes(8)
            if other not in self._by_other and other not in (_ZERO_OTHER, _ONES_OTHER):
                return other

    def add(self, other: bytes, state: S) -> None:
        self._by_other[other] = state

    def remove(self, other: bytes) -> None:
        self._by_other.pop(other, None)

    def get(self, other: bytes) -> S | None:
        return self._by_other.get(other)

    def status(self, clientid: int, sid: Stateid, kinds: frozenset[StateKind] | None = None) -> tuple[int, S | None]:
        """Validate ``sid`` for ``clientid`` in the order of RFC 8881 §8.2.4.

        Returns (NFS4_OK, state) or (error status, None).  Special stateids are not handled
        here (the caller decides where they are allowed) and answer NFS4ERR_BAD_STATEID.
        """
        other = sid.other
        if other == _ZERO_OTHER or other == _ONES_OTHER:
            return Stat.BAD_STATEID, None
        if other[:4] != self._epoch:
            return Stat.STALE_STATEID, None
        st = self._by_other.get(other)
        # Another client's stateid is answered exactly like an unknown one: nothing leaks.
        if st is None or st.clientid != clientid:
            return Stat.BAD_STATEID, None
        if kinds is not None and st.kind not in kinds:
            return Stat.BAD_STATEID, None
        if sid.seqid != 0:
            s = _seqid_status(sid.seqid, st.seqid)
            if s:
                return s, None
        if st.revoked:
            return int(st.revoked), None
        return Stat.OK, st

    def lookup(self, clientid: int, sid: Stateid, kinds: frozenset[StateKind] | None = None) -> S:
        """Like :meth:`status` but raises Nfs4Error."""
        status, st = self.status(clientid, sid, kinds)
        if st is None:
            raise Nfs4Error(status, f"stateid {sid}")
        return st
