"""READDIR cookies that survive changes to the directory.

Choice: the cookie of an entry is a 63-bit hash of its name (BLAKE2b), and a directory's
entries are returned in cookie order.  A cookie therefore names a *position* in hash space,
not an index or a kernel offset: "continue after cookie c" means "the entries whose cookie
is greater than c", whatever was added or removed meanwhile.  Entries present for the whole
listing are returned exactly once; entries added or removed during it may or may not appear
(RFC 8881 §18.23.4 allows exactly that).  Cookies are stable across server restarts too.

* 0, 1 and 2 are reserved (RFC 8881 §18.23.3: 0 starts a listing, 1 and 2 were "." and
  ".." on some servers); hashes below 3 are moved up to 3.
* Two names with the same 63-bit hash (about one chance in 10^11 in a directory of a
  million names) get consecutive cookies; only then does the verifier depend on the
  directory's modification time, so any change makes the client restart the listing rather
  than risk a cookie naming a different position.  Otherwise the verifier is a constant.
* Cost: a listing must be sorted, so the first page reads the whole directory, hashes every
  name and sorts: O(n log n) time and O(n) memory (about 150 bytes per entry).  The sorted
  listing is cached per directory keyed by (dev, ino) and checked against (mtime_ns,
  ctime_ns), so the following pages cost O(log n + page) each.  A listing that starts at
  cookie 0 always re-reads the directory (time stamps are too coarse to prove that nothing
  changed since the cached read).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

RESERVED_COOKIES = 3
_CONSTANT_VERIFIER = int.from_bytes(b"snfsDIR1", "big")


def name_cookie(name: bytes) -> int:
    h = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big") >> 1
    return h if h >= RESERVED_COOKIES else h + RESERVED_COOKIES


@dataclass(slots=True, frozen=True)
class Listing:
    stamp: tuple[int, int]
    cookies: list[int]
    names: list[str]
    verifier: int

    def start(self, cookie: int) -> int:
        """Index of the first entry after ``cookie``."""
        return 0 if cookie == 0 else bisect.bisect_right(self.cookies, cookie)


def build_listing(names: list[str], st: os.stat_result) -> Listing:
    pairs = sorted((name_cookie(os.fsencode(n)), n) for n in names)
    cookies: list[int] = []
    collided = False
    prev = 0
    for h, _ in pairs:
        c = h if h > prev else prev + 1
        collided |= c != h
        cookies.append(c)
        prev = c
    if collided:
        seed = f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}".encode()
        verifier = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "big") or 1
    else:
        verifier = _CONSTANT_VERIFIER
    return Listing((st.st_mtime_ns, st.st_ctime_ns), cookies, [n for _, n in pairs], verifier)


class ListingCache:
    """The most recent listing of up to ``size`` directories; thread-safe."""

    def __init__(self, size: int = 64):
        self._size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[int, int], Listing] = OrderedDict()

    def get(self, st: os.stat_result) -> Listing | None:
        key = (st.st_dev, st.st_ino)
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit.stamp != (st.st_mtime_ns, st.st_ctime_ns):
                return None
            self._data.move_to_end(key)
            return hit

    def put(self, st: os.stat_result, listing: Listing) -> None:
        key = (st.st_dev, st.st_ino)
        with self._lock:
            self._data[key] = listing
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)
