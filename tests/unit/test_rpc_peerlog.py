"""PeerLog: per-peer token buckets for log lines, the first of each kind, the summary line and
the bounded peer table."""

from __future__ import annotations

import logging

import pytest

from securenfs.rpc.peerlog import PeerLog

log = logging.getLogger("test.peerlog")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_burst_then_suppressed_with_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    pl = PeerLog(rate=1.0, burst=5, window=60.0, clock=clock)
    caplog.set_level(logging.INFO)
    written = [pl.log(log, logging.INFO, "10.0.0.7", "BADXDR" if i % 3 else "INVAL", "line %d", i)
               for i in range(12_000)]
    assert sum(written) == 5
    assert pl.suppressed == 12_000 - 5
    clock.now += 61
    # The next line of the peer brings the summary of the window before it.
    assert pl.log(log, logging.INFO, "10.0.0.7", "BADXDR", "after")
    (summary,) = _lines(caplog, "securenfs.peerlog")
    assert summary == ("peer 10.0.0.7: 11,995 similar lines suppressed in the last 61 s: "
                       "BADXDR 7,997, INVAL 3,998")
    assert len(_lines(caplog, "test.peerlog")) == 6


def test_first_of_each_kind_is_always_written(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    pl = PeerLog(rate=0.0, burst=1, clock=clock)
    caplog.set_level(logging.INFO)
    assert pl.log(log, logging.INFO, "p", "BADXDR", "a")
    assert not pl.log(log, logging.INFO, "p", "BADXDR", "b")
    assert pl.log(log, logging.INFO, "p", "INVAL", "c")  # a new kind, bucket empty
    assert not pl.log(log, logging.INFO, "p", "INVAL", "d")
    # Another peer has its own bucket.
    assert pl.log(log, logging.INFO, "q", "BADXDR", "e")
    assert _lines(caplog, "test.peerlog") == ["a", "c", "e"]


def test_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    pl = PeerLog(rate=2.0, burst=4, clock=clock)
    assert sum(pl.allow("p", "k") for _ in range(10)) == 4
    clock.now += 1.0
    assert sum(pl.allow("p", "k") for _ in range(10)) == 2


def test_disabled_level_costs_nothing() -> None:
    pl = PeerLog(burst=1)
    logging.getLogger("test.peerlog.quiet").setLevel(logging.WARNING)
    quiet = logging.getLogger("test.peerlog.quiet")
    assert not pl.log(quiet, logging.DEBUG, "p", "k", "x")
    assert len(pl) == 0 and pl.suppressed == 0


def test_peer_table_bound_evicts_the_least_recent_with_its_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    pl = PeerLog(rate=0.0, burst=1, max_peers=3, clock=clock)
    caplog.set_level(logging.INFO)
    for peer in ("a", "b", "c"):
        pl.allow(peer, "k")
        pl.allow(peer, "k")  # one suppressed each
    assert len(pl) == 3
    pl.allow("a", "k")  # "a" is now the most recent; "b" the least
    pl.allow("d", "k")
    assert len(pl) == 3
    (summary,) = _lines(caplog, "securenfs.peerlog")
    assert summary.startswith("peer b: 1 similar lines suppressed")
    for i in range(100):
        pl.allow(f"x{i}", "k")
    assert len(pl) == 3


def test_kinds_per_peer_are_bounded() -> None:
    pl = PeerLog(rate=0.0, burst=1, max_kinds=4, clock=Clock())
    assert sum(pl.allow("p", f"kind{i}") for i in range(100)) == 4


def test_flush_writes_pending_summaries(caplog: pytest.LogCaptureFixture) -> None:
    pl = PeerLog(rate=0.0, burst=1, clock=Clock())
    caplog.set_level(logging.INFO)
    for _ in range(3):
        pl.allow("p", "GARBAGE_ARGS")
    pl.flush()
    assert _lines(caplog, "securenfs.peerlog") == ["peer p: 2 similar lines suppressed in the last 0 s: GARBAGE_ARGS 2"]
    pl.flush()
    assert len(_lines(caplog, "securenfs.peerlog")) == 1


def test_flush_due_writes_only_windows_that_passed(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    pl = PeerLog(rate=0.0, burst=1, window=60.0, clock=clock)
    caplog.set_level(logging.INFO)
    for peer in ("early", "early", "early"):
        pl.allow(peer, "BADXDR")
    clock.now += 30
    pl.allow("late", "INVAL")
    pl.allow("late", "INVAL")
    clock.now += 31
    pl.flush_due()
    assert _lines(caplog, "securenfs.peerlog") == ["peer early: 2 similar lines suppressed in the last 61 s: BADXDR 2"]
    clock.now += 30
    pl.flush_due()
    assert _lines(caplog, "securenfs.peerlog")[1] == "peer late: 1 similar lines suppressed in the last 61 s: INVAL 1"
