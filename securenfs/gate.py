"""The start-up gate: run the preflight and switch off Kerberos exports whose checks fail.

An export that needs only AUTH_SYS never waits on Kerberos checks.  An export that lists
Kerberos flavors and ``sys`` keeps only ``sys`` while the Kerberos checks fail; an export
with Kerberos flavors only is switched off.  Each decision is logged with the failing check
and its remedy, and `securenfs status` shows it.  With ``strict`` the server refuses to start
instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from securenfs.config import Config, ExportConfig

log = logging.getLogger("securenfs.gate")


@dataclass(slots=True)
class GateOutcome:
    #: pseudo path -> readable reasons (one per failing check, with its remedy)
    restricted: dict[str, list[str]] = field(default_factory=dict)
    #: exports switched off entirely (no flavor left)
    disabled: list[ExportConfig] = field(default_factory=list)
    ran: bool = False


def run_gate(cfg: Config) -> GateOutcome:
    """Run the preflight for ``cfg`` and narrow ``cfg.exports`` in place."""
    out = GateOutcome()
    if not cfg.preflight.enabled or not cfg.uses_kerberos:
        return out
    from preflight import run_preflight
    from preflight.gate import decide_exports
    from preflight.settings import PreflightSettings

    settings = PreflightSettings.from_server_config(cfg)
    report = run_preflight(settings)
    out.ran = True
    decisions = {d.pseudo: d for d in decide_exports(report, settings.exports)}
    kept: list[ExportConfig] = []
    for e in cfg.exports:
        d = decisions.get(e.pseudo)
        if d is None or list(d.flavors) == list(e.sec):
            kept.append(e)
            continue
        reasons = [f"{r.id} {r.summary}" + (f" -- fix: {r.remedy}" if r.remedy else "") for r in d.reasons]
        out.restricted[e.pseudo] = reasons or ["preflight checks failed"]
        if d.flavors:
            log.error("export %s: Kerberos flavors switched off, serving only %s, because:",
                      e.pseudo, ",".join(d.flavors))
            e.sec = list(d.flavors)
            kept.append(e)
        else:
            log.error("export %s (%s) is switched off because:", e.pseudo, ",".join(e.sec))
            out.disabled.append(e)
        for r in reasons:
            log.error("    %s", r)
    cfg.exports = kept
    return out
