"""TTL cache: positive/negative TTLs, the stale window and the size bound."""

from __future__ import annotations

from idmap.cache import TtlCache
from idmap.config import CacheConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kw: float) -> tuple[TtlCache[str], Clock]:
    clock = Clock()
    cfg = CacheConfig(**{"positive_ttl": 10, "negative_ttl": 2, "stale_max": 100,
                         "max_entries": 3, "max_negative": 2, **kw})  # type: ignore[arg-type]
    return TtlCache(cfg, clock), clock


def test_positive_entry_expires_but_stays_available_as_stale() -> None:
    c, clock = make()
    c.put("a", "A")
    assert c.get("a").value == "A"  # type: ignore[union-attr]
    clock.now += 11
    assert c.get("a") is None  # expired: ask the backend
    stale = c.stale("a")
    assert stale is not None and stale.value == "A" and not stale.fresh
    clock.now += 100
    assert c.stale("a") is None  # beyond stale_max
    assert c.snapshot().stale_served == 1


def test_negative_entries_have_their_own_ttl_and_replace_positive() -> None:
    c, clock = make()
    c.put("a", "A")
    c.put_negative("a")
    hit = c.get("a")
    assert hit is not None and hit.negative
    assert c.stale("a") is None  # a deleted name is not served stale
    clock.now += 3
    assert c.get("a") is None
    c.put_negative("b")
    c.put("b", "B")  # found again: the negative entry is gone
    assert c.get("b").value == "B"  # type: ignore[union-attr]


def test_size_bounds_evict_least_recently_used() -> None:
    c, _ = make()
    for k in "abc":
        c.put(k, k.upper())
    c.get("a")
    c.put("d", "D")
    assert c.get("b") is None and c.get("a") is not None
    for k in "xyz":
        c.put_negative(k)
    s = c.snapshot()
    assert (s.entries, s.negative_entries) == (3, 2)
    c.flush()
    assert c.snapshot().entries == 0
