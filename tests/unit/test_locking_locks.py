"""Byte-range lock lists: validation, split, merge, upgrade/downgrade, and a model check."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securenfs.locking.locks import (
    END_OF_SPACE,
    NFS4_UINT64_MAX,
    FileLocks,
    LockType,
    lock_range,
    lock_type,
    wire_length,
)
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error

R, W = LockType.READ_LT, LockType.WRITE_LT
A: tuple[int, bytes] = (1, b"alice")
B: tuple[int, bytes] = (2, b"bob")
C: tuple[int, bytes] = (1, b"carol")  # same client as A, another lock-owner


def test_zero_length_is_inval() -> None:
    with pytest.raises(Nfs4Error) as ei:
        lock_range(0, 0)
    assert ei.value.status == Stat.INVAL


@pytest.mark.parametrize("offset,length", [(3, NFS4_UINT64_MAX - 1), (NFS4_UINT64_MAX, 2),
                                           (1 << 63, 1 << 63 | 1), (NFS4_UINT64_MAX, NFS4_UINT64_MAX - 1)])
def test_range_past_2_64_is_inval(offset: int, length: int) -> None:
    with pytest.raises(Nfs4Error) as ei:
        lock_range(offset, length)
    assert ei.value.status == Stat.INVAL


def test_range_ending_exactly_at_2_64_is_valid() -> None:
    assert lock_range(2, NFS4_UINT64_MAX - 1) == (2, END_OF_SPACE)
    assert lock_range(NFS4_UINT64_MAX, 1) == (NFS4_UINT64_MAX, END_OF_SPACE)
    # All ones is "to the end" from any offset, even where offset + length would pass 2**64.
    assert lock_range(NFS4_UINT64_MAX, NFS4_UINT64_MAX) == (NFS4_UINT64_MAX, END_OF_SPACE)


def test_all_ones_length_means_to_end_and_is_reported_so() -> None:
    fl = FileLocks()
    fl.lock(A, *lock_range(100, NFS4_UINT64_MAX), W)
    c = fl.test(B, *lock_range(1 << 62, 1), R)
    assert c is not None and (c.offset, c.length, c.locktype) == (100, NFS4_UINT64_MAX, W)
    assert wire_length(5, 10) == 5


def test_unknown_lock_type_is_inval() -> None:
    with pytest.raises(Nfs4Error) as ei:
        lock_type(9)
    assert ei.value.status == Stat.INVAL
    assert lock_type(4).base is W and lock_type(3).base is R and lock_type(3).blocking


def test_split_on_unlock_inside() -> None:
    fl = FileLocks()
    fl.lock(A, 0, 100, W)
    fl.unlock(A, 40, 60)
    assert fl.ranges(A) == [(0, 40, W), (60, 100, W)]
    # The hole is free for another owner; the rest is not.
    assert fl.test(B, 40, 60, W) is None
    assert fl.test(B, 39, 41, R) is not None


def test_merge_adjacent_and_overlapping_same_type() -> None:
    fl = FileLocks()
    fl.lock(A, 0, 10, R)
    fl.lock(A, 10, 20, R)
    fl.lock(A, 30, 40, R)
    fl.lock(A, 15, 35, R)
    assert fl.ranges(A) == [(0, 40, R)]


def test_different_types_touching_stay_separate() -> None:
    fl = FileLocks()
    fl.lock(A, 0, 10, R)
    fl.lock(A, 10, 20, W)
    assert fl.ranges(A) == [(0, 10, R), (10, 20, W)]


def test_upgrade_subrange_splits_and_downgrade_merges_back() -> None:
    fl = FileLocks()
    fl.lock(A, 0, 100, R)
    fl.lock(A, 20, 30, W)  # upgrade of a sub-range
    assert fl.ranges(A) == [(0, 20, R), (20, 30, W), (30, 100, R)]
    assert fl.test(B, 25, 26, R) is not None  # the write part excludes readers
    assert fl.test(B, 50, 60, R) is None  # the read part admits them
    fl.lock(A, 20, 30, R)  # downgrade: back to one lock
    assert fl.ranges(A) == [(0, 100, R)]
    assert fl.test(B, 25, 26, R) is None


def test_upgrade_denied_by_other_reader() -> None:
    fl = FileLocks()
    fl.lock(A, 0, 100, R)
    fl.lock(B, 50, 60, R)
    c = fl.test(A, 0, 100, W)
    assert c is not None and (c.clientid, c.owner, c.offset, c.length, c.locktype) == (2, b"bob", 50, 10, R)


def test_owners_of_same_client_conflict() -> None:
    fl = FileLocks()
    fl.lock(A, 0, 10, W)
    c = fl.test(C, 5, 6, R)
    assert c is not None and c.owner == b"alice"


def test_own_locks_never_conflict() -> None:
    fl = FileLocks()
    fl.lock(A, 0, 10, W)
    assert fl.test(A, 0, 10, W) is None


def test_many_locks_per_owner() -> None:
    fl = FileLocks()
    for i in range(2000):
        fl.lock(A, i * 10, i * 10 + 5, W if i % 2 else R)
    assert len(fl.ranges(A)) == 2000
    assert fl.test(B, 10 * 1000 + 5, 10 * 1000 + 10, W) is None  # a gap
    c = fl.test(B, 10 * 1001 + 1, 10 * 1001 + 2, R)
    assert c is not None and c.offset == 10010 and c.locktype is W
    fl.unlock(A, 0, END_OF_SPACE)
    assert not fl.has_locks(A) and not fl


# -- model check ---------------------------------------------------------------------------------
SPACE = 40
OWNERS = [A, B, C]
ops = st.lists(
    st.tuples(st.sampled_from(["lock", "unlock"]), st.integers(0, 2), st.integers(0, SPACE - 1),
              st.integers(1, 12), st.sampled_from([R, W, LockType.READW_LT, LockType.WRITEW_LT])),
    max_size=60,
)


def _expand(ranges: list[tuple[int, int, LockType]]) -> dict[int, LockType]:
    out: dict[int, LockType] = {}
    for a, b, t in ranges:
        for x in range(a, b):
            assert x not in out, "ranges of one owner overlap"
            out[x] = t
    return out


def _check_canonical(ranges: list[tuple[int, int, LockType]]) -> None:
    for (a1, b1, t1), (a2, b2, t2) in pairwise(ranges):
        assert a1 < b1 <= a2 < b2
        assert not (b1 == a2 and t1 is t2), "touching ranges of one type were not merged"


@settings(max_examples=300, deadline=None)
@given(ops)
def test_lock_table_matches_byte_model(seq: list[tuple[str, int, int, int, LockType]]) -> None:
    fl = FileLocks()
    model: dict[tuple[int, bytes], dict[int, LockType]] = {o: {} for o in OWNERS}
    for op, oi, start, length, lt in seq:
        owner = OWNERS[oi]
        end = min(start + length, SPACE)
        if op == "unlock":
            fl.unlock(owner, start, end)
            for x in range(start, end):
                model[owner].pop(x, None)
        else:
            base = lt.base
            expect_conflict = [
                (o, x) for o in OWNERS if o != owner for x in range(start, end)
                if x in model[o] and (base is W or model[o][x] is W)
            ]
            c = fl.test(owner, start, end, lt)
            if expect_conflict:
                assert c is not None
                # The reported lock is real: another owner's, overlapping, of a conflicting type.
                assert c.key != owner
                held = model[c.key]
                assert all(held.get(x) is c.locktype for x in range(c.offset, c.offset + c.length))
                assert c.offset < end and c.offset + c.length > start
                assert base is W or c.locktype is W
            else:
                assert c is None
                fl.lock(owner, start, end, lt)
                for x in range(start, end):
                    model[owner][x] = base
        for o in OWNERS:
            rs = fl.ranges(o)
            _check_canonical(rs)
            assert _expand(rs) == model[o]
            assert fl.has_locks(o) == bool(model[o])
