"""A bounded cache of open file descriptors for READ, WRITE and COMMIT.

NFS opens are protocol state, not kernel file descriptors: thousands of clients may hold
thousands of opens, and the process has a descriptor limit.  I/O therefore borrows a
descriptor from this cache, keyed by (file, mode), shared by every open of that file in that
mode.  At most ``limit`` descriptors are kept; when a new one is needed the least recently
used *idle* one is closed.  A descriptor in use by a READ or WRITE running in a pool thread is
pinned and never closed under it; if every cached descriptor is pinned the cache goes over the
bound for as long as they are (at most one per running I/O call), and shrinks back when they
are released.

Descriptors held outside the cache for the same files (one per lock-owner and file, for the
kernel's byte-range locks: :mod:`securenfs.locking.ofd`) count against the same limit: the
state manager reports them with :meth:`OpenFileCache.hold`, and the cache keeps fewer idle
descriptors while they are held.

Thread safety: the cache is used from the event loop and from the pool threads, so its
table is guarded by a ``threading.Lock``.  The (possibly slow) ``opener`` runs outside that
lock; when two threads race to open the same key, the first result is kept and the other
descriptor closed.  Permission checks belong to OPEN: a descriptor is reused for any client
that holds an open stateid allowing the access.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

DEFAULT_LIMIT: Final = 1024
_MODES: Final = (os.O_RDONLY, os.O_WRONLY, os.O_RDWR)

CacheKey = tuple[Hashable, int]


@dataclass(slots=True, eq=False)
class CachedFd:
    key: CacheKey
    fd: int
    pins: int = 0
    #: Set by :meth:`OpenFileCache.forget` while pinned: close at the last release.
    doomed: bool = False


class OpenFileCache:
    def __init__(self, limit: int = DEFAULT_LIMIT, *, close: Callable[[int], None] = os.close):
        if limit < 1:
            raise ValueError("the open-file cache needs a limit of at least 1")
        self.limit = limit
        self._close = close
        self._lock = threading.Lock()
        #: Least recently used first.
        self._entries: OrderedDict[CacheKey, CachedFd] = OrderedDict()
        self.opened = 0
        self.hits = 0
        self.evicted = 0
        #: Descriptors held outside the cache (byte-range lock descriptors) that count
        #: against ``limit``.
        self.held = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _evict_locked(self) -> list[int]:
        """Pick idle descriptors beyond the limit, least recently used first (closed by the
        caller outside the lock)."""
        victims: list[int] = []
        room = max(self.limit - self.held, 0)
        if len(self._entries) <= room:
            return victims
        for key, ent in list(self._entries.items()):
            if len(self._entries) <= room:
                break
            if ent.pins == 0:
                del self._entries[key]
                victims.append(ent.fd)
        self.evicted += len(victims)
        return victims

    def _close_all(self, fds: list[int]) -> None:
        for fd in fds:
            try:
                self._close(fd)
            except OSError:
                pass

    def acquire(self, file: Hashable, mode: int, opener: Callable[[], int]) -> CachedFd:
        """A pinned descriptor for ``file`` opened with ``mode`` (os.O_RDONLY, os.O_WRONLY or
        os.O_RDWR),
        calling ``opener`` when none is cached.  Release it with :meth:`release`."""
        if mode not in _MODES:
            raise ValueError(f"access mode {mode} is not O_RDONLY, O_WRONLY or O_RDWR")
        key: CacheKey = (file, mode)
        with self._lock:
            ent = self._entries.get(key)
            if ent is not None:
                ent.pins += 1
                self._entries.move_to_end(key)
                self.hits += 1
                return ent
        fd = opener()
        extra: list[int] = []
        with self._lock:
            ent = self._entries.get(key)
            if ent is not None:
                # Another thread opened it meanwhile: use that one, close ours.
                extra.append(fd)
                ent.pins += 1
                self._entries.move_to_end(key)
            else:
                ent = CachedFd(key, fd, pins=1)
                self._entries[key] = ent
                self.opened += 1
            extra.extend(self._evict_locked())
        self._close_all(extra)
        return ent

    def adopt(self, file: Hashable, mode: int, fd: int) -> None:
        """Hand ``fd`` (already open for ``file`` in ``mode``) to the cache, which then owns
        it.  When one is cached already, ``fd`` is closed and the cached one kept."""
        if mode not in _MODES:
            raise ValueError(f"access mode {mode} is not O_RDONLY, O_WRONLY or O_RDWR")
        key: CacheKey = (file, mode)
        extra: list[int] = []
        with self._lock:
            ent = self._entries.get(key)
            if ent is not None:
                extra.append(fd)
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self._entries[key] = CachedFd(key, fd)
                self.opened += 1
                extra.extend(self._evict_locked())
        self._close_all(extra)

    def hold(self, n: int) -> None:
        """Count ``n`` more (or, negative, fewer) descriptors held outside the cache against
        the limit; idle cached descriptors beyond what is left are closed."""
        with self._lock:
            self.held = max(self.held + n, 0)
            victims = self._evict_locked()
        self._close_all(victims)

    def release(self, ent: CachedFd) -> None:
        victims: list[int] = []
        with self._lock:
            if ent.pins <= 0:
                raise RuntimeError("release of a descriptor that is not pinned")
            ent.pins -= 1
            if ent.pins == 0:
                if ent.doomed:
                    victims.append(ent.fd)
                else:
                    victims.extend(self._evict_locked())
        self._close_all(victims)

    @contextmanager
    def use(self, file: Hashable, mode: int, opener: Callable[[], int]) -> Iterator[int]:
        """``with cache.use(fh, os.O_RDWR, opener) as fd:`` (in a pool thread)."""
        ent = self.acquire(file, mode, opener)
        try:
            yield ent.fd
        finally:
            self.release(ent)

    def forget(self, file: Hashable) -> int:
        """Close the descriptors of ``file`` (last CLOSE, REMOVE, export withdrawn); pinned ones
        close when released.  Returns how many were dropped."""
        victims: list[int] = []
        n = 0
        with self._lock:
            # A dict probe per access mode, not a scan: this runs on every last CLOSE.
            for mode in _MODES:
                ent = self._entries.pop((file, mode), None)
                if ent is None:
                    continue
                n += 1
                if ent.pins:
                    ent.doomed = True
                else:
                    victims.append(ent.fd)
        self._close_all(victims)
        return n

    def close(self) -> None:
        """Close every idle descriptor and forget the pinned ones (they close on release)."""
        victims: list[int] = []
        with self._lock:
            for ent in self._entries.values():
                if ent.pins:
                    ent.doomed = True
                else:
                    victims.append(ent.fd)
            self._entries.clear()
        self._close_all(victims)
