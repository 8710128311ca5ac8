"""The start-up gate: run the preflight and serve a Kerberos flavor only when its checks pass.

An export that needs only AUTH_SYS never waits on Kerberos checks: the server starts
listening at once with every Kerberos flavor held back (:func:`held_back`), runs the
preflight in the background, and then enables the Kerberos flavors whose checks passed
(:func:`decide`).  An export that lists Kerberos flavors and ``sys`` keeps only ``sys`` while
the Kerberos checks fail; an export with Kerberos flavors only stays switched off.  Each
decision is logged with the failing check and its remedy, and `securenfs status` shows it.
With ``preflight.strict`` (``--strict``) the preflight runs before the server listens and any
failure refuses the start.

The gate is live: the server re-runs it every ``preflight.interval`` seconds, on SIGHUP and on
``securenfs reload``.  A flavor held back comes on at the first run whose checks pass; once
Kerberos has served, only a broken keytab switches it off again (see ``preflight.gate``).
Each run logs only what changed since the previous one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from securenfs.config import Config
from securenfs.rpc.auth import KERBEROS_FLAVORS

if TYPE_CHECKING:
    from preflight.result import Result

log = logging.getLogger("securenfs.gate")


@dataclass(slots=True, frozen=True)
class CheckState:
    """The last result of one preflight check (the worst of its results)."""

    status: str  # OK, WARNING, ERROR, CRITICAL or SKIPPED
    summary: str
    remedy: str
    ran_at: float

    @property
    def failed(self) -> bool:
        return self.status in ("ERROR", "CRITICAL")

    def line(self, check_id: str) -> str:
        return f"{check_id} {self.summary}" + (f" -- fix: {self.remedy}" if self.remedy else "")


def check_states(results: list[Result], ran_at: float) -> dict[str, CheckState]:
    worst: dict[str, Result] = {}
    for r in results:
        if r.id not in worst or r.severity > worst[r.id].severity:
            worst[r.id] = r
    return {cid: CheckState(r.status, r.summary, r.remedy, ran_at) for cid, r in sorted(worst.items())}


@dataclass(slots=True)
class GateOutcome:
    #: pseudo path -> the flavors that may be served, for every export the gate narrowed
    overrides: dict[str, list[str]] = field(default_factory=dict)
    #: pseudo path -> readable reasons (one per failing check, with its remedy)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    #: check id -> its last result (empty when the preflight could not run)
    checks: dict[str, CheckState] = field(default_factory=dict)

    @property
    def restricted(self) -> bool:
        return bool(self.overrides)

    def serves_kerberos(self, cfg: Config) -> bool:
        """Whether any export still serves a Kerberos flavor after the gate."""
        return any(f in KERBEROS_FLAVORS for e in cfg.exports for f in self.overrides.get(e.pseudo, e.sec))


def needed(cfg: Config) -> bool:
    return cfg.preflight.enabled and cfg.uses_kerberos


def held_back(cfg: Config) -> dict[str, list[str]]:
    """While the preflight runs: every export without its Kerberos flavors."""
    return {e.pseudo: [f for f in e.sec if f not in KERBEROS_FLAVORS] for e in cfg.exports if e.needs_kerberos}


def decide(cfg: Config, served: bool = False) -> GateOutcome:
    """Run the preflight for ``cfg`` (blocking, bounded by its per-check timeouts).
    ``served``: Kerberos has served since start, so only a broken keytab holds it back."""
    from preflight import run_preflight
    from preflight.gate import decide_exports
    from preflight.settings import PreflightSettings

    settings = PreflightSettings.from_server_config(cfg)
    report = run_preflight(settings)
    decisions = {d.pseudo: d for d in decide_exports(report, settings.exports, served=served)}
    out = GateOutcome(checks=check_states(report.results, time.time()))
    for e in cfg.exports:
        d = decisions.get(e.pseudo)
        if d is None or list(d.flavors) == list(e.sec):
            continue
        out.overrides[e.pseudo] = list(d.flavors)
        out.reasons[e.pseudo] = [f"{r.id} {r.summary}" + (f" -- fix: {r.remedy}" if r.remedy else "")
                                 for r in d.reasons] or ["preflight checks failed"]
    return out


def log_outcome(cfg: Config, out: GateOutcome, before: GateOutcome | None = None) -> None:
    """Log the decision and every failed check; with ``before`` (the previous run), only
    what changed: exports narrowed or restored, checks that failed or recovered."""
    old_checks = before.checks if before is not None else {}
    for cid, st in out.checks.items():
        prev = old_checks.get(cid)
        if st.failed and (prev is None or prev.status != st.status or prev.summary != st.summary):
            log.warning("preflight %s", st.line(cid))
        elif not st.failed and prev is not None and prev.failed:
            log.info("preflight %s passes again: %s", cid, st.summary)
    for e in cfg.exports:
        if before is not None and before.overrides.get(e.pseudo) == out.overrides.get(e.pseudo):
            continue
        if e.pseudo not in out.overrides:
            if before is not None:
                log.warning("export %s serves all its flavors again (%s)", e.pseudo, ",".join(e.sec))
            continue
        flavors = out.overrides[e.pseudo]
        if flavors:
            log.error("export %s: Kerberos flavors switched off, serving only %s, because:",
                      e.pseudo, ",".join(flavors))
        else:
            log.error("export %s (%s) is switched off because:", e.pseudo, ",".join(e.sec))
        for r in out.reasons[e.pseudo]:
            log.error("    %s", r)

