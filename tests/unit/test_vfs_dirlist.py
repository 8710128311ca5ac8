"""READDIR cookie scheme: positions in hash space, reserved values, collisions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from securenfs.vfs import dirlist
from securenfs.vfs.dirlist import ListingCache, build_listing, name_cookie


def test_cookies_are_sorted_unique_stable_and_never_reserved(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    names = [f"file{i}" for i in range(2000)]
    listing = build_listing(names, st)
    assert listing.cookies == sorted(listing.cookies)
    assert len(set(listing.cookies)) == len(names) and min(listing.cookies) >= 3
    assert max(listing.cookies) < 2**63
    assert sorted(listing.names) == sorted(names)
    # the same name has the same cookie in any listing (and after a restart)
    other = build_listing(names[::2], st)
    assert dict(zip(other.names, other.cookies)) == {
        n: c for n, c in zip(listing.names, listing.cookies) if n in set(names[::2])}
    assert name_cookie(b"file1") == listing.cookies[listing.names.index("file1")]


def test_position_survives_removals(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    full = build_listing([f"n{i}" for i in range(100)], st)
    c = full.cookies[49]
    shrunk = build_listing([n for n in full.names if n != full.names[49] and n != full.names[50]], st)
    # continuing after a removed entry resumes at the first entry after it
    assert shrunk.names[shrunk.start(c)] == full.names[51]
    assert full.start(0) == 0 and full.start(2**63) == 100


def test_collisions_get_distinct_cookies_and_a_changing_verifier(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    st = os.stat(tmp_path)
    normal = build_listing(["a", "b"], st)
    monkeypatch.setattr(dirlist, "name_cookie", lambda name: 1000)
    clash = build_listing(["a", "b", "c"], st)
    assert clash.cookies == [1000, 1001, 1002]
    assert clash.verifier != normal.verifier and clash.verifier != 0
    (tmp_path / "touch").write_text("x")  # the directory changes
    assert build_listing(["a", "b", "c"], os.stat(tmp_path)).verifier != clash.verifier


def test_cache_is_keyed_by_directory_and_invalidated_by_changes(tmp_path: Path) -> None:
    cache = ListingCache(size=2)
    st = os.stat(tmp_path)
    listing = build_listing(["x"], st)
    cache.put(st, listing)
    assert cache.get(st) is listing
    (tmp_path / "new").write_text("x")
    os.utime(tmp_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.get(os.stat(tmp_path)) is None
    for i in range(3):
        d = tmp_path / f"d{i}"
        d.mkdir()
        cache.put(os.stat(d), build_listing([], os.stat(d)))
    assert cache.get(os.stat(tmp_path / "d0")) is None  # evicted: bounded size
