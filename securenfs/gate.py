"""The start-up gate: run the preflight and serve a Kerberos flavor only when its checks pass.

An export that needs only AUTH_SYS never waits on Kerberos checks: the server starts
listening at once with every Kerberos flavor held back (:func:`held_back`), runs the
preflight in the background, and then enables the Kerberos flavors whose checks passed
(:func:`decide`).  An export that lists Kerberos flavors and ``sys`` keeps only ``sys`` while
the Kerberos checks fail; an export with Kerberos flavors only stays switched off.  Each
decision is logged with the failing check and its remedy, and `securenfs status` shows it.
With ``preflight.strict`` (``--strict``) the preflight runs before the server listens and any
failure refuses the start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from securenfs.config import KERBEROS_FLAVORS, Config

log = logging.getLogger("securenfs.gate")


@dataclass(slots=True)
class GateOutcome:
    #: pseudo path -> the flavors that may be served, for every export the gate narrowed
    overrides: dict[str, list[str]] = field(default_factory=dict)
    #: pseudo path -> readable reasons (one per failing check, with its remedy)
    reasons: dict[str, list[str]] = field(default_factory=dict)

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


def decide(cfg: Config) -> GateOutcome:
    """Run the preflight for ``cfg`` (blocking, bounded by its per-check timeouts)."""
    from preflight import run_preflight
    from preflight.gate import decide_exports
    from preflight.settings import PreflightSettings

    settings = PreflightSettings.from_server_config(cfg)
    report = run_preflight(settings)
    decisions = {d.pseudo: d for d in decide_exports(report, settings.exports)}
    out = GateOutcome()
    for e in cfg.exports:
        d = decisions.get(e.pseudo)
        if d is None or list(d.flavors) == list(e.sec):
            continue
        out.overrides[e.pseudo] = list(d.flavors)
        out.reasons[e.pseudo] = [f"{r.id} {r.summary}" + (f" -- fix: {r.remedy}" if r.remedy else "")
                                 for r in d.reasons] or ["preflight checks failed"]
    return out


def log_outcome(cfg: Config, out: GateOutcome) -> None:
    for e in cfg.exports:
        if e.pseudo not in out.overrides:
            continue
        flavors = out.overrides[e.pseudo]
        if flavors:
            log.error("export %s: Kerberos flavors switched off, serving only %s, because:",
                      e.pseudo, ",".join(flavors))
        else:
            log.error("export %s (%s) is switched off because:", e.pseudo, ",".join(e.sec))
        for r in out.reasons[e.pseudo]:
            log.error("    %s", r)

