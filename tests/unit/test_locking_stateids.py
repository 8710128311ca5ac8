"""Stateids: special values, seqid rules and wrap-around, client binding, TEST/FREE_STATEID."""

from __future__ import annotations

import pytest

from securenfs.locking import (
    ANONYMOUS,
    CURRENT,
    INVALID,
    READ_BYPASS,
    LockType,
    ShareAccess,
    ShareDeny,
    Special,
    Stateid,
    next_seqid,
    resolve_current,
    special_kind,
)
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.state.opens import LockState, OpenState, StateManager

EPOCH = 7
C1, C2 = 0x1111, 0x2222
F = b"fh-file-1"
RW = ShareAccess.BOTH
NONE = ShareDeny.NONE


def _sid(st: OpenState | LockState) -> Stateid:
    return Stateid(st.seqid, st.other)


def _open(m: StateManager, cid: int, owner: bytes, f: bytes, access: int, deny: int) -> Stateid:
    return _sid(m.open(cid, owner, f, access, deny)[0])


def _lock(m: StateManager, cid: int, f: bytes, lt: int, off: int, ln: int, *, o: Stateid | None = None,
          owner: bytes | None = None, lk: Stateid | None = None) -> Stateid:
    return _sid(m.lock(cid, f, lt, off, ln, open_sid=o, lock_owner=owner, lock_sid=lk))


def _status(fn: object, *args: object, **kw: object) -> int:
    try:
        fn(*args, **kw)  # type: ignore[operator]
    except Nfs4Error as exc:
        return exc.status
    return Stat.OK


def test_seqid_wraps_from_max_to_one() -> None:
    assert next_seqid(1) == 2
    assert next_seqid(0xFFFFFFFE) == 0xFFFFFFFF
    assert next_seqid(0xFFFFFFFF) == 1


def test_special_stateids_are_recognised() -> None:
    assert special_kind(Stateid.unpack(bytes(16))) is Special.ANONYMOUS
    assert special_kind(Stateid.unpack(b"\xff" * 16)) is Special.READ_BYPASS
    assert special_kind(Stateid.unpack(b"\x00\x00\x00\x01" + bytes(12))) is Special.CURRENT
    assert special_kind(INVALID) is None
    assert ANONYMOUS.pack() == bytes(16) and READ_BYPASS.pack() == b"\xff" * 16 and CURRENT.seqid == 1


def test_wrong_size_stateid_is_bad() -> None:
    with pytest.raises(Nfs4Error) as ei:
        Stateid.unpack(b"\x00" * 15)
    assert ei.value.status == Stat.BAD_STATEID


def test_current_marker_resolution() -> None:
    real = Stateid(3, b"x" * 12)
    assert resolve_current(CURRENT, real) == real
    assert resolve_current(real.pack(), None) == real
    with pytest.raises(Nfs4Error) as ei:
        resolve_current(CURRENT.pack(), None)
    assert ei.value.status == Stat.BAD_STATEID


@pytest.mark.parametrize("sid", [
    b"\x00\x00\x00\x05" + b"\xff" * 12,  # other all ones, seqid 5
    b"\x00\x00\x00\x00" + b"\xff" * 12,  # other all ones, seqid 0
    b"\xff" * 4 + bytes(12),  # the reserved invalid stateid
    b"\x00\x00\x00\x02" + bytes(12),  # other zero, seqid 2
])
def test_all_ones_or_zero_stateids_that_are_not_special_are_bad(sid: bytes) -> None:
    ls = StateManager(EPOCH)
    _open(ls, C1, b"o", F, RW, NONE)
    assert ls.test_stateids(C1, [sid]) == [Stat.BAD_STATEID]
    assert _status(ls.check_io, C1, Stateid.unpack(sid), F, False) == Stat.BAD_STATEID
    assert _status(ls.close, C1, sid, F) == Stat.BAD_STATEID


def test_open_seqids_start_at_one_bump_on_upgrade_and_old_ones_are_old() -> None:
    ls = StateManager(EPOCH)
    r1 = _open(ls, C1, b"o", F, ShareAccess.READ, NONE)
    assert r1.seqid == 1
    st, new = ls.open(C1, b"o", F, ShareAccess.WRITE, NONE)
    r2 = _sid(st)
    assert r2.seqid == 2 and not new and r2.other == r1.other
    assert ls.test_stateids(C1, [r1, r2, Stateid(0, r1.other), Stateid(3, r1.other)]) == [
        Stat.OLD_STATEID, Stat.OK, Stat.OK, Stat.BAD_STATEID]
    # CLOSE with the old seqid is refused: the client has not seen the upgrade (RFC 8881 §8.2.2).
    assert _status(ls.close, C1, r1, F) == Stat.OLD_STATEID
    ls.close(C1, r2, F)
    assert ls.test_stateids(C1, [r2]) == [Stat.BAD_STATEID]
    assert INVALID.pack() == b"\xff" * 4 + bytes(12)  # what op_close answers (RFC 8881 §18.2.4)


def test_open_stateid_seqid_wraps_to_one() -> None:
    ls = StateManager(EPOCH)
    st, _ = ls.open(C1, b"o", F, ShareAccess.READ, NONE)
    st.seqid = 0xFFFFFFFE  # as after 4 billion upgrades
    assert _open(ls, C1, b"o", F, ShareAccess.READ, NONE).seqid == 0xFFFFFFFF
    wrapped = _open(ls, C1, b"o", F, ShareAccess.READ, NONE)
    assert wrapped.seqid == 1
    other = wrapped.other
    assert ls.test_stateids(C1, [wrapped, Stateid(0xFFFFFFFF, other), Stateid(0xFFFFFFF0, other),
                                 Stateid(2, other)]) == [Stat.OK, Stat.OLD_STATEID, Stat.OLD_STATEID,
                                                        Stat.BAD_STATEID]
    assert ls.open_downgrade(C1, wrapped, F, ShareAccess.READ, NONE).seqid == 2


def test_lock_stateid_seqid_bumps_and_wraps() -> None:
    ls = StateManager(EPOCH)
    o = _open(ls, C1, b"o", F, RW, NONE)
    l1 = _lock(ls, C1, F, LockType.WRITE_LT, 0, 10, o=o, owner=b"lo")
    assert l1.seqid == 1 and l1.other != o.other
    l2 = _lock(ls, C1, F, LockType.READ_LT, 20, 10, lk=l1)
    assert l2.seqid == 2
    l3 = _sid(ls.locku(C1, l2, F, LockType.READ_LT, 0, 10))
    assert l3.seqid == 3
    assert _status(ls.locku, C1, l2, F, LockType.READ_LT, 0, 10) == Stat.OLD_STATEID
    state = ls.table.get(l3.other)
    assert state is not None
    state.seqid = 0xFFFFFFFF
    l4 = _lock(ls, C1, F, LockType.READ_LT, 40, 1, lk=Stateid(0, l3.other))
    assert l4.seqid == 1
    # The open stateid's seqid is independent of the lock stateid's.
    assert ls.test_stateids(C1, [o]) == [Stat.OK]


def test_stateid_of_another_client_is_bad_everywhere() -> None:
    ls = StateManager(EPOCH)
    o = _open(ls, C1, b"o", F, RW, NONE)
    lk = _lock(ls, C1, F, LockType.WRITE_LT, 0, 10, o=o, owner=b"lo")
    assert ls.test_stateids(C2, [o, lk]) == [Stat.BAD_STATEID, Stat.BAD_STATEID]
    assert _status(ls.check_io, C2, o, F, True) == Stat.BAD_STATEID
    assert _status(ls.close, C2, o, F) == Stat.BAD_STATEID
    assert _status(ls.open_downgrade, C2, o, F, ShareAccess.READ, NONE) == Stat.BAD_STATEID
    assert _status(ls.locku, C2, lk, F, LockType.WRITE_LT, 0, 10) == Stat.BAD_STATEID
    assert _status(_lock, ls, C2, F, LockType.WRITE_LT, 50, 1, lk=lk) == Stat.BAD_STATEID
    assert _status(_lock, ls, C2, F, LockType.WRITE_LT, 50, 1, o=o, owner=b"x") == Stat.BAD_STATEID
    assert _status(ls.free_stateid, C2, lk) == Stat.BAD_STATEID
    # ... and nothing of client 1 changed.
    assert ls.test_stateids(C1, [o, lk]) == [Stat.OK, Stat.OK]
    assert ls.locks_of(F, C1, b"lo") == [(0, 10, LockType.WRITE_LT)]


def test_stateid_from_another_boot_is_stale() -> None:
    old = StateManager(EPOCH)
    o = _open(old, C1, b"o", F, RW, NONE)
    new = StateManager(EPOCH + 1)
    assert new.test_stateids(C1, [o]) == [Stat.STALE_STATEID]
    assert _status(new.check_io, C1, o, F, False) == Stat.STALE_STATEID


def test_unknown_stateid_of_this_boot_is_bad() -> None:
    ls = StateManager(EPOCH)
    forged = Stateid(1, ls.table.new_other())
    assert ls.test_stateids(C1, [forged]) == [Stat.BAD_STATEID]


def test_wrong_kind_and_wrong_file_are_bad() -> None:
    ls = StateManager(EPOCH)
    o = _open(ls, C1, b"o", F, RW, NONE)
    lk = _lock(ls, C1, F, LockType.READ_LT, 0, 1, o=o, owner=b"lo")
    assert _status(ls.close, C1, lk, F) == Stat.BAD_STATEID  # a lock stateid is not an open
    assert _status(ls.locku, C1, o, F, LockType.READ_LT, 0, 1) == Stat.BAD_STATEID
    assert _status(ls.check_io, C1, o, b"other-file", False) == Stat.BAD_STATEID


def test_free_stateid_rules() -> None:
    ls = StateManager(EPOCH)
    o = _open(ls, C1, b"o", F, RW, NONE)
    lk = _lock(ls, C1, F, LockType.WRITE_LT, 0, 10, o=o, owner=b"lo")
    assert _status(ls.free_stateid, C1, o) == Stat.LOCKS_HELD
    assert _status(ls.free_stateid, C1, lk) == Stat.LOCKS_HELD
    lk = _sid(ls.locku(C1, lk, F, LockType.WRITE_LT, 0, 10))
    ls.free_stateid(C1, lk)
    assert ls.test_stateids(C1, [lk, o]) == [Stat.BAD_STATEID, Stat.OK]
    assert _status(ls.free_stateid, C1, ANONYMOUS) == Stat.BAD_STATEID
    # A new LOCK by the same owner gets a fresh stateid.
    lk2 = _lock(ls, C1, F, LockType.WRITE_LT, 0, 10, o=o, owner=b"lo")
    assert lk2.other != lk.other and lk2.seqid == 1


def test_test_stateid_changes_nothing_and_reports_specials_bad() -> None:
    ls = StateManager(EPOCH)
    o = _open(ls, C1, b"o", F, RW, NONE)
    assert ls.test_stateids(C1, [ANONYMOUS, READ_BYPASS, CURRENT, b"short", o]) == [
        Stat.BAD_STATEID, Stat.BAD_STATEID, Stat.BAD_STATEID, Stat.BAD_STATEID, Stat.OK]
    assert ls.test_stateids(C1, [o]) == [Stat.OK]
    assert o.seqid == 1


def test_check_io_with_special_stateids() -> None:
    ls = StateManager(EPOCH)
    assert ls.check_io(C1, ANONYMOUS, F, True) is None
    assert ls.check_io(C1, READ_BYPASS, F, False) is None
    _open(ls, C2, b"o", F, ShareAccess.READ, ShareDeny.WRITE)
    # An anonymous or read-bypass WRITE is subject to the DENY_WRITE reservation, a READ is not.
    assert _status(ls.check_io, C1, ANONYMOUS, F, True) == Stat.LOCKED
    assert _status(ls.check_io, C1, READ_BYPASS, F, True) == Stat.LOCKED
    assert ls.check_io(C1, ANONYMOUS, F, False) is None
    # The current-stateid marker stands for the COMPOUND's current stateid.
    o = _open(ls, C1, b"o", F, ShareAccess.READ, NONE)
    assert ls.check_io(C1, resolve_current(CURRENT, o), F, False) is not None
    # Without a current stateid the marker is refused.
    assert _status(ls.check_io, C1, CURRENT, F, False) == Stat.BAD_STATEID


def test_write_through_read_only_open_is_openmode() -> None:
    ls = StateManager(EPOCH)
    o = _open(ls, C1, b"o", F, ShareAccess.READ, NONE)
    assert _status(ls.check_io, C1, o, F, True) == Stat.OPENMODE
    assert ls.check_io(C1, Stateid(0, o.other), F, False) is not None
