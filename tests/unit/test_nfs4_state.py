"""Unit tests of the core II state: the atomic revocation of a courtesy client's opens and locks."""

from __future__ import annotations

from securenfs.locking.locks import LockType
from securenfs.locking.stateids import Revoked, Stateid
from securenfs.nfs4.constants import Stat
from securenfs.state.opens import StateManager

SPAN = 32
OWNERS = ("a", "b")


def test_courteous_revocation_is_all_or_nothing() -> None:
    expired = {1}
    mgr = StateManager(7, lease_expired=lambda cid: cid in expired)
    f = mgr.file(b"fh")
    a_owner = mgr.open_owner(1, b"a")
    a = mgr.new_open(a_owner, f, None, None, 3, 2)
    lo = mgr.lock_owner(1, b"pa")
    ls = mgr.lock_state(lo, a)
    f.locks.lock(lo.key, 0, 10, LockType.WRITE_LT)
    b = mgr.new_open(mgr.open_owner(2, b"b"), f, None, None, 1, 0)
    # Holder 2 is alive: no revocation.
    assert not mgr.courteous_break([b])
    assert mgr.courteous_break(f.shares.conflicting_holders(None, 2, 0))
    assert a.revoked == ls.revoked == Revoked.EXPIRED
    assert not f.locks and f.shares.holders == {b: (1, 0)}
    assert mgr.revoked_pending(1)
    status, _ = mgr.table.status(1, Stateid(0, a.other))
    assert status == Stat.EXPIRED
    assert mgr.free_revoked(1, a.other) and mgr.free_revoked(1, ls.other)
    assert not mgr.revoked_pending(1)
    assert mgr.table.status(1, Stateid(0, a.other))[0] == Stat.BAD_STATEID
