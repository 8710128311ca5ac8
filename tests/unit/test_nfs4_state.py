"""Unit tests of the core II state pieces: the bounded descriptor cache and the atomic
revocation of a courtesy client's opens and locks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from securenfs.locking.locks import LockType
from securenfs.locking.stateids import Revoked, Stateid
from securenfs.nfs4.constants import Stat
from securenfs.state.fdcache import FdCache
from securenfs.state.opens import StateManager

SPAN = 32
OWNERS = ("a", "b")


def test_fd_cache_stays_bounded_and_keeps_descriptors_in_use(tmp_path: Path) -> None:
    cache = FdCache(limit=4)
    files = []
    for i in range(20):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"%d" % i)
        files.append(p)
    opened: list[int] = []

    def opener(p: Path) -> int:
        fd = os.open(p, os.O_RDONLY)
        opened.append(fd)
        return fd

    with cache.use("held", lambda: opener(files[0])) as held:
        for i, p in enumerate(files[1:], 1):
            with cache.use(p, lambda p=p: opener(p)) as fd:
                assert os.pread(fd, 10, 0) == b"%d" % i
            assert len(cache) <= 4
        # The descriptor in use was not closed by the evictions.
        assert os.pread(held, 10, 0) == b"0"
    cache.close()
    for fd in opened:
        with pytest.raises(OSError):
            os.fstat(fd)


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
