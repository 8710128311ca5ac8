"""Running checks: concurrently, each under a deadline, prerequisites first.

A check whose prerequisite failed is reported as SKIPPED (counting at the prerequisite's
severity) instead of repeating the same error.  A check that raises becomes a CRITICAL result
carrying its traceback; a check that overruns its deadline becomes an ERROR result and the run
goes on without it (its thread is a daemon, so a hung socket cannot hold the process open).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field

from preflight.context import RunContext
from preflight.registry import Check, load_all
from preflight.result import Result, Severity
from preflight.settings import PreflightSettings


@dataclass(slots=True)
class Report:
    results: list[Result]
    started: float
    duration: float
    host: dict[str, str] = field(default_factory=dict)

    @property
    def worst(self) -> Severity:
        return max((r.severity for r in self.results), default=Severity.OK)

    def counts(self) -> dict[str, int]:
        out = {"CRITICAL": 0, "ERROR": 0, "WARNING": 0, "OK": 0, "SKIPPED": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def by_id(self, check_id: str) -> list[Result]:
        return [r for r in self.results if r.id == check_id]


def _normalise(check: Check, out: object) -> list[Result]:
    items = out if isinstance(out, list) else [out]
    results: list[Result] = []
    for r in items:
        if not isinstance(r, Result):
            raise TypeError(f"check {check.id} returned {type(r).__name__}, not Result")
        r.id = r.id or check.id
        r.check = r.check or check.name
        results.append(r)
    if not results:
        raise TypeError(f"check {check.id} returned no result")
    return results


def run_checks(
    settings: PreflightSettings,
    checks: Sequence[Check] | None = None,
    ctx: RunContext | None = None,
) -> Report:
    if checks is None:
        checks = list(load_all().checks.values())
    ctx = ctx or RunContext(settings)
    started = time.time()
    t0 = time.monotonic()
    selected = {c.id: c for c in checks}
    prereqs = {c.id: [p for p in c.prerequisites(ctx) if p in selected] for c in checks}
    order = {c.id: i for i, c in enumerate(checks)}
    done: dict[str, list[Result]] = {}
    running: dict[str, tuple[threading.Thread, float, float]] = {}  # id -> thread, start, deadline
    cond = threading.Condition()
    finished: dict[str, list[Result]] = {}

    def worker(check: Check) -> None:
        start = time.monotonic()
        try:
            res = _normalise(check, check.func(ctx))
        except Exception as exc:  # noqa: BLE001 - a crashing check is a finding, not a crash
            res = [
                Result(
                    check.id,
                    Severity.CRITICAL,
                    f"check {check.id} ({check.name}) crashed: {type(exc).__name__}: {exc}",
                    detail=traceback.format_exc(),
                    remedy="This is a bug in the check; please report it with the detail above.",
                    check=check.name,
                )
            ]
        dur = time.monotonic() - start
        for r in res:
            r.duration = dur
        with cond:
            finished[check.id] = res
            cond.notify_all()

    def skip_reason(cid: str) -> tuple[list[str], Severity]:
        check = selected[cid]
        why: list[str] = []
        level = Severity.OK
        for p in prereqs[cid]:
            limit = Severity.WARNING if p in check.requires_clean else Severity.ERROR
            worst = max((r.severity for r in done[p]), default=Severity.OK)
            if worst >= limit:
                why.append(p)
                level = max(level, worst)
        return why, level

    pending = set(selected)
    with cond:
        while pending or running:
            # Collect finished checks.
            for cid in list(running):
                if cid in finished:
                    done[cid] = finished.pop(cid)
                    ctx.results[cid] = done[cid]
                    del running[cid]
            now = time.monotonic()
            for cid, (_, start, deadline) in list(running.items()):
                if now >= deadline:
                    c = selected[cid]
                    done[cid] = [
                        Result(
                            cid,
                            Severity.ERROR,
                            f"{c.name} did not finish within {settings.timeout:g} s",
                            detail="The check was abandoned; a network peer is probably not answering.",
                            remedy="Check that the servers this check talks to are reachable, "
                            "or raise --timeout.",
                            check=c.name,
                            duration=now - start,
                        )
                    ]
                    ctx.results[cid] = done[cid]
                    del running[cid]
            # Start or skip every check whose prerequisites are done.
            progressed = False
            for cid in sorted(pending, key=order.__getitem__):
                if all(p in done for p in prereqs[cid]):
                    pending.discard(cid)
                    progressed = True
                    why, level = skip_reason(cid)
                    c = selected[cid]
                    if why:
                        done[cid] = [
                            Result(
                                cid,
                                level,
                                f"{c.name} skipped: {', '.join(why)} did not pass",
                                detail=f"Fix {', '.join(why)} first; this check depends on it.",
                                check=c.name,
                                skipped_because=why,
                            )
                        ]
                        ctx.results[cid] = done[cid]
                        continue
                    th = threading.Thread(
                        target=worker, args=(c,), name=f"preflight-{cid}", daemon=True
                    )
                    start = time.monotonic()
                    running[cid] = (th, start, start + settings.timeout)
                    th.start()
            if progressed:
                continue
            if pending and not running:
                # Only possible with a dependency cycle: report rather than hang.
                for cid in pending:
                    done[cid] = [
                        Result(
                            cid,
                            Severity.CRITICAL,
                            f"check {cid} has circular prerequisites",
                            check=selected[cid].name,
                        )
                    ]
                pending.clear()
                continue
            if running:
                next_deadline = min(d for _, _, d in running.values())
                cond.wait(timeout=max(0.0, next_deadline - time.monotonic()) + 0.01)
    results = [r for c in checks for r in done.get(c.id, [])]
    host = {"fqdn": ctx.fqdn}
    try:
        host["realm"] = ctx.realm
    except Exception:  # noqa: BLE001 - an unreadable krb5.conf is reported by KRB-001
        host["realm"] = ""
    host["nfsv4_domain"] = settings.idmap_domain
    return Report(results, started, time.monotonic() - t0, host)
