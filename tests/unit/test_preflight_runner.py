"""The runner: prerequisites, skips, crashes, deadlines and concurrency."""

from __future__ import annotations

import threading
import time

from preflight.context import RunContext
from preflight.registry import Check, Registry
from preflight.result import Result, Severity, critical, error, ok, warning
from preflight.runner import run_checks
from preflight.settings import PreflightSettings


def mk(id: str, func, requires=(), requires_clean=()) -> Check:  # type: ignore[no-untyped-def]
    return Check(id, f"Check{id}", "test", func, requires, requires_clean)


def test_failed_prerequisite_skips_dependants_at_its_severity() -> None:
    checks = [
        mk("A-001", lambda c: critical("A-001", "broken", remedy="fix A")),
        mk("B-001", lambda c: ok("B-001", "fine"), requires=("A-001",)),
        mk("C-001", lambda c: ok("C-001", "fine"), requires=("B-001",)),
    ]
    rep = run_checks(PreflightSettings(timeout=5), checks)
    b, c = rep.by_id("B-001")[0], rep.by_id("C-001")[0]
    assert (
        b.status == "SKIPPED" and b.skipped_because == ["A-001"] and b.severity == Severity.CRITICAL
    )
    assert c.status == "SKIPPED" and c.skipped_because == ["B-001"]
    assert rep.counts() == {"CRITICAL": 1, "ERROR": 0, "WARNING": 0, "OK": 0, "SKIPPED": 2}
    assert rep.worst == Severity.CRITICAL


def test_warning_prerequisite_skips_only_strict_dependants() -> None:
    checks = [
        mk("A-001", lambda c: warning("A-001", "meh")),
        mk("B-001", lambda c: ok("B-001", "ran"), requires=("A-001",)),
        mk("C-001", lambda c: ok("C-001", "ran"), requires_clean=("A-001",)),
    ]
    rep = run_checks(PreflightSettings(timeout=5), checks)
    assert rep.by_id("B-001")[0].status == "OK"
    assert (
        rep.by_id("C-001")[0].status == "SKIPPED"
        and rep.by_id("C-001")[0].severity == Severity.WARNING
    )


def test_crashing_check_becomes_critical_with_traceback_and_run_goes_on() -> None:
    def boom(c: RunContext) -> Result:
        raise ZeroDivisionError("oops")

    rep = run_checks(
        PreflightSettings(timeout=5),
        [mk("A-001", boom), mk("B-001", lambda c: ok("B-001", "fine"))],
    )
    a = rep.by_id("A-001")[0]
    assert a.severity == Severity.CRITICAL and "ZeroDivisionError: oops" in a.summary
    assert "Traceback" in a.detail and "boom" in a.detail
    assert rep.by_id("B-001")[0].status == "OK"


def test_hung_check_is_abandoned_at_its_deadline() -> None:
    release = threading.Event()

    def hang(c: RunContext) -> Result:
        release.wait(30)
        return ok("A-001", "late")

    checks = [
        mk("A-001", hang),
        mk("B-001", lambda c: ok("B-001", "fine")),
        mk("C-001", lambda c: ok("C-001", "x"), requires=("A-001",)),
    ]
    try:
        rep = run_checks(PreflightSettings(timeout=0.3), checks)
    finally:
        release.set()
    a = rep.by_id("A-001")[0]
    assert a.severity == Severity.ERROR and "did not finish within 0.3 s" in a.summary
    assert rep.by_id("B-001")[0].status == "OK"
    assert rep.by_id("C-001")[0].status == "SKIPPED"


def test_checks_run_concurrently() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def meet(id: str):  # type: ignore[no-untyped-def]
        def f(c: RunContext) -> Result:
            barrier.wait()  # only passes if all three run at the same time
            return ok(id, "met")

        return f

    rep = run_checks(
        PreflightSettings(timeout=5), [mk(i, meet(i)) for i in ("A-001", "B-001", "C-001")]
    )
    assert [r.status for r in rep.results] == ["OK", "OK", "OK"]


def test_multi_result_checks_keep_keys_and_order() -> None:
    def many(c: RunContext) -> list[Result]:
        return [Result("A-001", Severity.OK, "one", key="x"), error("A-001", "two")]

    rep = run_checks(
        PreflightSettings(timeout=5), [mk("A-001", many), mk("B-001", lambda c: ok("B-001", "b"))]
    )
    assert [(r.id, r.key, r.check) for r in rep.results] == [
        ("A-001", "x", "CheckA-001"),
        ("A-001", "", "CheckA-001"),
        ("B-001", "", "CheckB-001"),
    ]
    assert all(r.duration >= 0 for r in rep.results)


def test_memo_computes_once_across_threads() -> None:
    calls = []

    def fact() -> int:
        calls.append(1)
        time.sleep(0.05)
        return 42

    def use(id: str):  # type: ignore[no-untyped-def]
        return lambda c: ok(id, str(c.memo("fact", fact)))

    rep = run_checks(
        PreflightSettings(timeout=5), [mk(f"A-00{i}", use(f"A-00{i}")) for i in range(5)]
    )
    assert len(calls) == 1 and {r.summary for r in rep.results} == {"42"}


def test_registry_selection() -> None:
    reg = Registry()
    for cid in ("DNS-001", "DNS-002", "KT-001"):
        reg.add(mk(cid, lambda c: ok("x", "y")))
    assert [c.id for c in reg.select(["DNS"])] == ["DNS-001", "DNS-002"]
    assert [c.id for c in reg.select([], ["DNS-002"])] == ["DNS-001", "KT-001"]
    try:
        reg.select(["NOPE-1"])
    except ValueError as exc:
        assert "unknown check id" in str(exc)
    else:
        raise AssertionError("unknown id accepted")
