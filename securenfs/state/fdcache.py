"""A bounded cache of open file descriptors, shared by opens of the same file, mode and user.

NFSv4 OPEN state can outnumber the descriptors a process may hold (thousands of opens from
many clients), so an open does not pin a descriptor: READ and WRITE borrow one from this
cache, which reopens the file (as the user who opened it) when it was evicted.  Entries in
use are never closed; when every entry is in use the cache may briefly exceed its bound.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    fd: int
    refs: int = 0
    dead: bool = False


class FdCache:
    """Thread-safe: used from the server's worker threads."""

    def __init__(self, limit: int = 1024):
        self.limit = max(1, limit)
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self.opened = 0  # descriptors opened (for tests and status)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: Hashable, fd: int) -> None:
        """Adopt an already open descriptor (e.g. the one that created the file)."""
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old.refs == 0:
                os.close(fd)
                self._entries.move_to_end(key)
                return
            if old is not None:
                old.dead = True  # closed by its last user
            self._entries[key] = _Entry(fd)
            self._entries.move_to_end(key)
            self.opened += 1
            self._trim()

    @contextmanager
    def use(self, key: Hashable, opener: Callable[[], int]) -> Iterator[int]:
        """A descriptor for ``key`` for the duration of the block (``opener`` on a miss)."""
        with self._lock:
            e = self._entries.get(key)
            if e is not None:
                e.refs += 1
                self._entries.move_to_end(key)
        if e is None:
            fd = opener()
            with self._lock:
                e = self._entries.get(key)
                if e is None:
                    e = _Entry(fd)
                    self._entries[key] = e
                    self.opened += 1
                else:
                    os.close(fd)  # another thread opened it meanwhile
                e.refs += 1
                self._trim()
        try:
            yield e.fd
        finally:
            with self._lock:
                e.refs -= 1
                if e.dead and e.refs == 0:
                    os.close(e.fd)
                else:
                    self._trim()

    def forget(self, match: Callable[[Hashable], bool]) -> None:
        """Close the descriptors of keys for which ``match`` is true (file removed, ...)."""
        with self._lock:
            for k in [k for k in self._entries if match(k)]:
                e = self._entries.pop(k)
                if e.refs:
                    e.dead = True
                else:
                    os.close(e.fd)

    def _trim(self) -> None:
        if len(self._entries) <= self.limit:
            return
        for k in list(self._entries):
            if len(self._entries) <= self.limit:
                break
            e = self._entries[k]
            if e.refs == 0:
                del self._entries[k]
                os.close(e.fd)

    def close(self) -> None:
        with self._lock:
            for e in self._entries.values():
                if e.refs:
                    e.dead = True
                else:
                    os.close(e.fd)
            self._entries.clear()
