"""Share reservations through the state manager: DENY modes, upgrades, OPEN_DOWNGRADE, CLOSE."""

from __future__ import annotations

import pytest

from securenfs.locking import NFS4_UINT64_MAX, LockType, ShareAccess, ShareDeny, Stateid
from securenfs.locking.shares import achievable, validate_share
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.state.opens import OpenState, StateManager

C1, C2 = 0xA, 0xB
F = b"fh-1"
R, W, RW = ShareAccess.READ, ShareAccess.WRITE, ShareAccess.BOTH
DN, DR, DW, DB = ShareDeny.NONE, ShareDeny.READ, ShareDeny.WRITE, ShareDeny.BOTH


class _Opened:
    """What one OPEN returned: the state, its stateid then, and whether it was new."""

    def __init__(self, res: tuple[OpenState, bool]):
        self.state, self.new = res
        self.stateid = Stateid(self.state.seqid, self.state.other)


def _open(m: StateManager, cid: int, owner: bytes, f: bytes, access: int, deny: int) -> _Opened:
    return _Opened(m.open(cid, owner, f, access, deny))


def _err(fn: object, *args: object) -> int:
    try:
        fn(*args)  # type: ignore[operator]
    except Nfs4Error as exc:
        return exc.status
    return Stat.OK


def test_deny_write_blocks_writers_but_admits_readers() -> None:
    ls = StateManager(1)
    _open(ls, C1, b"win", F, R, DW)
    assert _err(ls.open, C2, b"x", F, W, DN) == Stat.SHARE_DENIED
    assert _err(ls.open, C2, b"x", F, RW, DN) == Stat.SHARE_DENIED
    # Another open-owner of the same client is another holder too.
    assert _err(ls.open, C1, b"other", F, W, DN) == Stat.SHARE_DENIED
    assert _open(ls, C2, b"x", F, R, DN).new


def test_deny_conflicts_with_existing_access() -> None:
    ls = StateManager(1)
    _open(ls, C1, b"a", F, W, DN)
    assert _err(ls.open, C2, b"b", F, R, DW) == Stat.SHARE_DENIED
    assert _open(ls, C2, b"b", F, R, DR).stateid.seqid == 1  # DENY_READ does not touch a writer


def test_close_lifts_the_reservation() -> None:
    ls = StateManager(1)
    r = _open(ls, C1, b"a", F, R, DB)
    assert _err(ls.open, C2, b"b", F, R, DN) == Stat.SHARE_DENIED
    ls.close(C1, r.stateid, F)
    assert _open(ls, C2, b"b", F, RW, DB).new
    assert F in ls.files


def test_upgrade_by_same_owner_is_union_and_checked_against_others() -> None:
    ls = StateManager(1)
    r1 = _open(ls, C1, b"a", F, R, DN)
    _open(ls, C2, b"b", F, R, DW)
    # The same owner's own deny never blocks it, but another owner's DENY_WRITE does.
    assert _err(ls.open, C1, b"a", F, W, DN) == Stat.SHARE_DENIED
    assert r1.state.access == R and r1.state.seqid == 1  # a refused upgrade changes nothing
    assert _err(ls.open, C1, b"a", F, R, DR) == Stat.SHARE_DENIED  # the other owner reads
    r2 = _open(ls, C1, b"a", F, R, DW)
    assert (r2.state.access, r2.state.deny) == (R, DW) and r2.stateid.seqid == 2


def test_own_deny_does_not_block_own_upgrade() -> None:
    ls = StateManager(1)
    _open(ls, C1, b"a", F, R, DW)
    r = _open(ls, C1, b"a", F, W, DN)
    assert (r.state.access, r.state.deny) == (RW, DW)


def test_open_downgrade_to_an_earlier_combination() -> None:
    ls = StateManager(1)
    _open(ls, C1, b"a", F, R, DN)
    r = _open(ls, C1, b"a", F, W, DW)
    assert (r.state.access, r.state.deny) == (RW, DW)
    assert _err(ls.open, C2, b"b", F, W, DN) == Stat.SHARE_DENIED
    st = ls.open_downgrade(C1, r.stateid, F, R, DN)
    assert st.seqid == 3
    assert _open(ls, C2, b"b", F, W, DN).new  # the DENY_WRITE is gone


@pytest.mark.parametrize("access,deny", [(W, DN), (R, DW), (RW, DN), (R, DR)])
def test_open_downgrade_to_a_combination_never_opened_is_inval(access: int, deny: int) -> None:
    ls = StateManager(1)
    _open(ls, C1, b"a", F, R, DN)
    r = _open(ls, C1, b"a", F, W, DW)
    assert _err(ls.open_downgrade, C1, r.stateid, F, access, deny) == Stat.INVAL
    assert (r.state.access, r.state.deny) == (RW, DW)


def test_open_downgrade_that_adds_bits_is_inval() -> None:
    ls = StateManager(1)
    r = _open(ls, C1, b"a", F, R, DN)
    assert _err(ls.open_downgrade, C1, r.stateid, F, RW, DN) == Stat.INVAL


def test_bad_share_values() -> None:
    assert _err(validate_share, 0, 0) == Stat.INVAL
    assert _err(validate_share, 1, 4) == Stat.INVAL
    assert _err(validate_share, 0x1000000 | 1, 0) == Stat.INVAL
    # NFSv4.1 "want" bits ride in share_access and are not access modes.
    assert validate_share(0x0100 | 1, 0) == (1, 0)
    ls = StateManager(1)
    assert _err(ls.open, C1, b"a", F, 0, 0) == Stat.INVAL
    assert _err(ls.open, C1, b"x" * 1025, F, 1, 0) == Stat.INVAL
    assert not ls.files  # a refused OPEN leaves no file record behind


def test_achievable() -> None:
    used = {(1, 0), (2, 2)}
    assert achievable((1, 0), used) and achievable((2, 2), used) and achievable((3, 2), used)
    assert not achievable((3, 0), used) and not achievable((2, 0), used)


def test_close_releases_the_open_and_its_lock_stateids() -> None:
    ls = StateManager(1)
    o = _open(ls, C1, b"a", F, RW, DN).stateid
    lk = ls.lock(C1, F, LockType.WRITE_LT, 0, 100, open_sid=o, lock_owner=b"lo")
    assert _err(ls.close, C1, o, F) == Stat.LOCKS_HELD
    ls.locku(C1, Stateid(0, lk.other), F, LockType.WRITE_LT, 0, 100)
    ls.close(C1, o, F)
    assert ls.test_stateids(C1, [o, lk.stateid()]) == [Stat.BAD_STATEID, Stat.BAD_STATEID]
    assert not ls.clients[C1]
    assert not ls.files
    # The range is free for others now.
    o2 = _open(ls, C2, b"b", F, RW, DN).stateid
    assert ls.lock(C2, F, LockType.WRITE_LT, 0, 100, open_sid=o2, lock_owner=b"lo").seqid == 1


def test_many_files_and_many_locks_per_owner() -> None:
    ls = StateManager(1)
    opens = {}
    for i in range(300):
        f = b"file-%d" % i
        opens[f] = _open(ls, C1, b"proc", f, RW, DN).stateid
    locks = {}
    for f, o in opens.items():
        st = ls.lock(C1, f, LockType.WRITE_LT, 0, 1, open_sid=o, lock_owner=b"proc-lo")
        for k in range(1, 20):
            st = ls.lock(C1, f, LockType.READ_LT if k % 2 else LockType.WRITE_LT, k * 10, 5,
                         lock_sid=Stateid(st.seqid, st.other))
        locks[f] = Stateid(st.seqid, st.other)
    assert len({s.other for s in locks.values()}) == 300  # one lock stateid per file
    for f, sid in locks.items():
        assert sid.seqid == 20
        assert len(ls.locks_of(f, C1, b"proc-lo")) == 20
    # Closing one file leaves the others' locks alone.
    first = next(iter(opens))
    ls.locku(C1, locks[first], first, LockType.WRITE_LT, 0, NFS4_UINT64_MAX)
    ls.close(C1, opens[first], first)
    assert ls.locks_of(first, C1, b"proc-lo") == []
    assert all(len(ls.locks_of(f, C1, b"proc-lo")) == 20 for f in list(opens)[1:])
    assert ls.test_stateids(C1, [locks[first]]) == [Stat.BAD_STATEID]
    assert ls.test_stateids(C1, list(locks.values())[1:]) == [Stat.OK] * 299
