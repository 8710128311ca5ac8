"""The kernel's OFD locks (securenfs.locking.ofd) on a real file: two descriptors behave as two
NFS lock-owners, one descriptor replaces, splits and merges like one owner, and ranges beyond
the kernel's byte space (2**63) are cut the way the module says."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from securenfs.locking import ofd
from securenfs.locking.locks import END_OF_SPACE, NFS4_UINT64_MAX, LockType
from tests.support.hostlock import proc_locks

W, R = LockType.WRITE_LT, LockType.READ_LT


@pytest.fixture()
def two(tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    p = tmp_path / "f"
    p.write_bytes(b"x")
    a, b = os.open(p, os.O_RDWR), os.open(p, os.O_RDWR)
    yield p, a, b
    os.close(a)
    os.close(b)


def test_kernel_range_cuts_at_two_to_the_63() -> None:
    assert ofd.kernel_range(0, 10) == (0, 10)
    assert ofd.kernel_range(5, END_OF_SPACE) == (5, 0)  # to the end of file
    assert ofd.kernel_range(5, ofd.KERNEL_END + 1) == (5, 0)
    assert ofd.kernel_range(ofd.KERNEL_END, END_OF_SPACE) is None
    assert ofd.kernel_range(ofd.KERNEL_END - 1, ofd.KERNEL_END) == (ofd.KERNEL_END - 1, 0)


def test_two_descriptors_conflict_like_two_owners(two: tuple[Path, int, int]) -> None:
    p, a, b = two
    assert ofd.set_lock(a, W, 0, 100)
    assert not ofd.set_lock(b, R, 50, 60)
    kc = ofd.test_lock(b, R, 50, 60)
    assert kc == ofd.KernelConflict(0, 100, W, -1) and kc.length == 100
    assert ofd.test_lock(a, W, 0, 100) is None  # a descriptor's own locks never count
    ofd.unlock(a, 40, 70)  # split
    assert [r[2:] for r in proc_locks(p)] == [(0, 39), (70, 99)]
    assert ofd.set_lock(b, R, 50, 60)
    assert ofd.set_lock(a, R, 0, 40)  # downgrade
    assert ofd.set_lock(b, R, 10, 20)  # read shares with read
    assert not ofd.set_lock(a, W, 0, 40)  # upgrade refused: b reads 10..19
    ofd.unlock(b, 0, END_OF_SPACE)
    assert ofd.set_lock(a, W, 0, 40)
    assert ofd.set_lock(a, W, 40, 70)  # merges into 0..99
    assert [r[1:] for r in proc_locks(p)] == [("WRITE", 0, 99)]


def test_lock_to_the_end_is_reported_with_length_all_ones(two: tuple[Path, int, int]) -> None:
    _p, a, b = two
    assert ofd.set_lock(a, W, 100, END_OF_SPACE)
    kc = ofd.test_lock(b, W, 0, END_OF_SPACE)
    assert kc is not None and (kc.start, kc.length) == (100, NFS4_UINT64_MAX)
    # Above 2**63 nothing is mirrored: no conflict in the kernel.
    assert ofd.set_lock(b, W, ofd.KERNEL_END + 5, ofd.KERNEL_END + 6)


def test_write_lock_on_a_read_only_descriptor_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x")
    fd = os.open(p, os.O_RDONLY)
    try:
        with pytest.raises(ofd.KernelLockError):
            ofd.set_lock(fd, W, 0, 1)
        assert ofd.set_lock(fd, R, 0, 1)
    finally:
        os.close(fd)
