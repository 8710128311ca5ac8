"""The bounded open-file cache: sharing, LRU eviction of idle descriptors, pinning, threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from securenfs.locking import OpenFileCache


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _opener(path: Path, counter: list[int]) -> Callable[[], int]:
    def op() -> int:
        counter[0] += 1
        return os.open(path, os.O_RDWR)
    return op


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    out = []
    for i in range(50):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"data %d" % i)
        out.append(p)
    return out


def test_same_file_and_mode_share_one_descriptor(files: list[Path]) -> None:
    cache = OpenFileCache(4)
    n = [0]
    with cache.use(files[0], os.O_RDWR, _opener(files[0], n)) as fd1, \
            cache.use(files[0], os.O_RDWR, _opener(files[0], n)) as fd2:
        assert fd1 == fd2
    assert n == [1] and cache.hits == 1
    cache.close()


def test_thousands_of_opens_stay_within_the_bound(files: list[Path]) -> None:
    before = _fd_count()
    cache = OpenFileCache(8)
    n = [0]
    for rnd in range(40):
        for p in files:
            with cache.use(p, os.O_RDWR, _opener(p, n)) as fd:
                assert os.pread(fd, 4, 0) == b"data"
            assert len(cache) <= 8
            assert _fd_count() <= before + 8
    assert n[0] > 8 and cache.evicted == n[0] - len(cache)
    cache.close()
    assert _fd_count() == before


def test_least_recently_used_idle_descriptor_goes_first(files: list[Path]) -> None:
    cache = OpenFileCache(2)
    n = [0]
    for p in files[:2]:
        with cache.use(p, os.O_RDWR, _opener(p, n)):
            pass
    with cache.use(files[0], os.O_RDWR, _opener(files[0], n)):  # files[0] is now the most recent
        pass
    with cache.use(files[2], os.O_RDWR, _opener(files[2], n)):
        pass
    assert n == [3]
    with cache.use(files[0], os.O_RDWR, _opener(files[0], n)):
        pass
    assert n == [3]  # still cached
    with cache.use(files[1], os.O_RDWR, _opener(files[1], n)):
        pass
    assert n == [4]  # files[1] had been evicted
    cache.close()


def test_pinned_descriptors_are_never_closed_under_io(files: list[Path]) -> None:
    cache = OpenFileCache(1)
    n = [0]
    held = cache.acquire(files[0], os.O_RDWR, _opener(files[0], n))
    with cache.use(files[1], os.O_RDWR, _opener(files[1], n)) as fd:
        # Over the bound while both are in use; both descriptors work.
        assert len(cache) == 2
        assert os.pread(held.fd, 4, 0) == b"data" and os.pread(fd, 4, 0) == b"data"
    assert len(cache) == 1
    assert os.pread(held.fd, 4, 0) == b"data"
    cache.release(held)
    with pytest.raises(RuntimeError):
        cache.release(held)
    cache.close()


def test_forget_closes_idle_now_and_pinned_on_release(files: list[Path]) -> None:
    before = _fd_count()
    cache = OpenFileCache(8)
    n = [0]
    with cache.use(files[0], os.O_RDONLY, lambda: os.open(files[0], os.O_RDONLY)):
        pass
    held = cache.acquire(files[0], os.O_RDWR, _opener(files[0], n))
    assert cache.forget(files[0]) == 2
    assert _fd_count() == before + 1  # the pinned one stays open for its READ
    assert os.pread(held.fd, 4, 0) == b"data"
    cache.release(held)
    assert _fd_count() == before and len(cache) == 0


def test_bad_mode_and_limit() -> None:
    with pytest.raises(ValueError):
        OpenFileCache(0)
    with pytest.raises(ValueError):
        OpenFileCache(2).acquire(b"x", 0o777, lambda: 0)


def test_concurrent_threads_share_and_bound(files: list[Path]) -> None:
    before = _fd_count()
    cache = OpenFileCache(6)
    errors: list[BaseException] = []
    lock = threading.Lock()
    opened = [0]

    def opener(p: Path) -> Callable[[], int]:
        def op() -> int:
            with lock:
                opened[0] += 1
            return os.open(p, os.O_RDWR)
        return op

    def work(i: int) -> None:
        try:
            for k in range(200):
                p = files[(i * 7 + k) % 12]
                with cache.use(p, os.O_RDWR, opener(p)) as fd:
                    assert os.pread(fd, 5, 0) == b"data "
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert not errors
    assert len(cache) <= 6
    cache.close()
    assert _fd_count() == before


def test_adopted_descriptor_is_reused_and_a_duplicate_is_closed(files: list[Path]) -> None:
    base = _fd_count()
    cache = OpenFileCache(2)
    n = [0]
    first = os.open(files[0], os.O_RDWR)
    cache.adopt(files[0], os.O_RDWR, first)
    with cache.use(files[0], os.O_RDWR, _opener(files[0], n)) as fd:
        assert fd == first and n == [0]  # no second open
    dup = os.open(files[0], os.O_RDWR)
    cache.adopt(files[0], os.O_RDWR, dup)  # already cached: the new one is closed
    with pytest.raises(OSError):
        os.fstat(dup)
    assert _fd_count() == base + 1
    # Adopted descriptors count against the bound like opened ones.
    for p in files[1:4]:
        cache.adopt(p, os.O_RDWR, os.open(p, os.O_RDWR))
    assert len(cache) == 2 and _fd_count() == base + 2
    cache.close()
    assert _fd_count() == base


def test_descriptors_held_outside_count_against_the_limit(files: list[Path]) -> None:
    before = _fd_count()
    cache = OpenFileCache(4)
    n = [0]
    for p in files[:4]:
        with cache.use(p, os.O_RDWR, _opener(p, n)):
            pass
    assert len(cache) == 4
    # Three lock descriptors are held elsewhere: only one idle I/O descriptor may stay.
    cache.hold(3)
    assert len(cache) == 1 and _fd_count() == before + 1
    # At the limit, I/O still gets a descriptor (pinned), and the cache shrinks after.
    cache.hold(1)
    with cache.use(files[5], os.O_RDWR, _opener(files[5], n)) as fd:
        assert os.pread(fd, 4, 0) == b"data"
    assert len(cache) == 0
    cache.hold(-4)
    assert cache.held == 0
    cache.close()
    assert _fd_count() == before
