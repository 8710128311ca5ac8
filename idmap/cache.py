"""A bounded cache with positive and negative TTLs that can serve stale entries.

Positive entries stay after their TTL for up to ``stale_max`` seconds so that they can be
served while every backend is unreachable (:meth:`TtlCache.stale`).  Negative entries
("authoritatively not found") have their own, short TTL and bound.  Both are LRU-bounded.
Backend outages are never stored here: only answers are.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from idmap.config import CacheConfig

V = TypeVar("V")


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    negative_hits: int = 0
    misses: int = 0
    stale_served: int = 0
    evictions: int = 0
    entries: int = 0
    negative_entries: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in self.__slots__}


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    stored: float


class Lookup(Generic[V]):
    """What the cache knows about a key."""

    __slots__ = ("value", "fresh", "negative", "age")

    def __init__(self, value: V | None, fresh: bool, negative: bool, age: float) -> None:
        self.value = value
        self.fresh = fresh
        self.negative = negative
        self.age = age


class TtlCache(Generic[V]):
    def __init__(self, cfg: CacheConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self._clock = clock
        self._pos: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._neg: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, key: Hashable) -> Lookup[V] | None:
        """A fresh positive or negative entry, or None (counts hits and misses)."""
        now = self._clock()
        with self._lock:
            entry = self._pos.get(key)
            if entry is not None:
                age = now - entry.stored
                if age < self.cfg.positive_ttl:
                    self._pos.move_to_end(key)
                    self.stats.hits += 1
                    return Lookup(entry.value, True, False, age)
                if age >= self.cfg.positive_ttl + self.cfg.stale_max:
                    del self._pos[key]
            stored = self._neg.get(key)
            if stored is not None:
                if now - stored < self.cfg.negative_ttl:
                    self.stats.negative_hits += 1
                    return Lookup(None, True, True, now - stored)
                del self._neg[key]
            self.stats.misses += 1
            return None

    def stale(self, key: Hashable) -> Lookup[V] | None:
        """An expired positive entry still within ``stale_max``, for use during outages."""
        now = self._clock()
        with self._lock:
            entry = self._pos.get(key)
            if entry is None:
                return None
            age = now - entry.stored
            if age >= self.cfg.positive_ttl + self.cfg.stale_max:
                del self._pos[key]
                return None
            self.stats.stale_served += 1
            return Lookup(entry.value, age < self.cfg.positive_ttl, False, age)

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._neg.pop(key, None)
            self._pos[key] = _Entry(value, self._clock())
            self._pos.move_to_end(key)
            while len(self._pos) > self.cfg.max_entries:
                self._pos.popitem(last=False)
                self.stats.evictions += 1

    def put_negative(self, key: Hashable) -> None:
        if self.cfg.negative_ttl <= 0 or self.cfg.max_negative <= 0:
            return
        with self._lock:
            # A name that disappeared from the directory must stop resolving.
            self._pos.pop(key, None)
            self._neg[key] = self._clock()
            self._neg.move_to_end(key)
            while len(self._neg) > self.cfg.max_negative:
                self._neg.popitem(last=False)
                self.stats.evictions += 1

    def flush(self) -> None:
        with self._lock:
            self._pos.clear()
            self._neg.clear()

    def snapshot(self) -> CacheStats:
        with self._lock:
            self.stats.entries = len(self._pos)
            self.stats.negative_entries = len(self._neg)
            return CacheStats(**self.stats.as_dict())
