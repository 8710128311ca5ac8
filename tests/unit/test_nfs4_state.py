"""Unit tests of the core II state pieces: byte-range lock arithmetic (against a per-byte
model), lock ranges, the bounded descriptor cache, revocation of a courtesy client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securenfs.locking.stateids import Revoked, Stateid
from securenfs.nfs4.constants import Stat
from securenfs.nfs4.errors import Nfs4Error
from securenfs.state.fdcache import FdCache
from securenfs.state.locks import END, FileLocks, lock_range, wire_length
from securenfs.state.opens import StateManager

SPAN = 32
OWNERS = ("a", "b")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OWNERS), st.sampled_from(["r", "w", "u"]),
                          st.integers(0, SPAN - 1), st.integers(1, 8)), max_size=30))
def test_locks_match_a_per_byte_model(steps: list[tuple[str, str, int, int]]) -> None:
    locks = FileLocks()
    model: dict[str, list[str | None]] = {o: [None] * (SPAN + 8) for o in OWNERS}
    for owner, what, start, n in steps:
        end = start + n
        other = model["b" if owner == "a" else "a"]
        if what == "u":
            locks.unlock(owner, start, end)
            model[owner][start:end] = [None] * n
            continue
        write = what == "w"
        conflict = any(x is not None and (write or x == "w") for x in other[start:end])
        got = locks.conflict(owner, start, end, write)
        assert (got is not None) == conflict
        if not conflict:
            locks.set(owner, start, end, write)
            model[owner][start:end] = [what] * n
        # Same bytes, and each owner's ranges are disjoint, maximal (merged) and non-empty.
        for o in OWNERS:
            mine = sorted((r.start, r.end, r.write) for r in locks.ranges if r.owner == o)
            bytes_ = [None] * (SPAN + 8)
            for s, e, w in mine:
                assert s < e
                for i in range(s, e):
                    assert bytes_[i] is None
                    bytes_[i] = "w" if w else "r"
            assert bytes_ == model[o]
            for (s1, e1, w1), (s2, _e2, w2) in zip(mine, mine[1:], strict=False):
                assert not (e1 == s2 and w1 == w2), "adjacent ranges of one type were not merged"


def test_lock_range_limits() -> None:
    assert lock_range(5, (1 << 64) - 1) == (5, END)
    assert wire_length(5, END) == (1 << 64) - 1
    assert lock_range((1 << 64) - 2, 1) == ((1 << 64) - 2, (1 << 64) - 1)
    for off, n in ((0, 0), ((1 << 64) - 1, 2), (1 << 63, 1 << 63)):
        with pytest.raises(Nfs4Error) as ei:
            lock_range(off, n)
        assert ei.value.status == Stat.INVAL


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
    f.locks.set(lo, 0, 10, True)
    b = mgr.new_open(mgr.open_owner(2, b"b"), f, None, None, 1, 0)
    # Holder 2 is alive: no revocation.
    assert not mgr.courteous_break([b])
    assert mgr.courteous_break(f.shares.conflicting_holders(None, 2, 0))
    assert a.revoked == ls.revoked == Revoked.EXPIRED
    assert not f.locks.ranges and f.shares.holders == {b: (1, 0)}
    assert mgr.revoked_pending(1)
    status, _ = mgr.table.status(1, Stateid(0, a.other))
    assert status == Stat.EXPIRED
    assert mgr.free_revoked(1, a.other) and mgr.free_revoked(1, ls.other)
    assert not mgr.revoked_pending(1)
    assert mgr.table.status(1, Stateid(0, a.other))[0] == Stat.BAD_STATEID
