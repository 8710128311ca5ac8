"""Context table bounds, LRU eviction and expiry (fake clock)."""

from __future__ import annotations

from securenfs.rpcsec_gss.context import CtxState
from securenfs.rpcsec_gss.table import ContextTable, TableLimits


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_handles_are_random_and_distinct() -> None:
    t = ContextTable()
    hs = {t.new_pending("10.0.0.1").handle for _ in range(200)}
    assert len(hs) == 200 and all(len(h) == 16 for h in hs)


def test_per_peer_cap_evicts_that_peers_lru_only() -> None:
    t = ContextTable(TableLimits(max_contexts=100, max_per_peer=3))
    other = t.new_pending("10.0.0.9")
    a = [t.new_pending("10.0.0.1") for _ in range(3)]
    t.touch(a[0])  # a[1] is now the least recently used of this peer
    t.new_pending("10.0.0.1")
    assert t.get(a[1].handle) is None and a[1].state is CtxState.DEAD
    assert t.get(a[0].handle) is not None and t.get(other.handle) is not None
    assert t.peer_count("10.0.0.1") == 3 and t.stats.evicted_peer == 1


def test_global_cap_reaps_expired_before_evicting() -> None:
    clock = Clock()
    t = ContextTable(TableLimits(max_contexts=3, max_per_peer=10), clock)
    cs = [t.new_pending(f"10.0.0.{i}") for i in range(3)]
    for c in cs:
        t.established(c, lifetime=100 if c is not cs[1] else 5)
    clock.t += 10
    t.new_pending("10.0.0.7")
    assert t.get(cs[1].handle) is None and t.stats.expired == 1 and t.stats.evicted_global == 0
    t.new_pending("10.0.0.8")
    assert len(t) == 3 and t.stats.evicted_global == 1 and t.get(cs[0].handle) is None


def test_idle_and_absolute_expiry() -> None:
    clock = Clock()
    t = ContextTable(TableLimits(idle_timeout=60, pending_timeout=5), clock)
    pending = t.new_pending("p")
    live = t.new_pending("p")
    t.established(live, lifetime=1000)
    clock.t += 6
    assert t.reap() == 1 and t.get(pending.handle) is None
    clock.t += 30
    t.touch(live)
    clock.t += 59
    assert t.reap() == 0
    clock.t += 2
    assert t.reap() == 1 and len(t) == 0 and t.stats.idle_reaped == 1 and t.stats.expired == 1
