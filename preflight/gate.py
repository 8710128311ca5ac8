"""Deciding at start which exports may be served, from a preflight report.

A Kerberos flavor is served only when every check it depends on passed (below ERROR); an
AUTH_SYS-only export never waits on Kerberos.  Results that name an export (``key`` equal to its
pseudo path) count for that export whatever its flavors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from preflight.checks.exports import KERBEROS_PREREQUISITES
from preflight.result import Result, Severity
from preflight.runner import Report
from preflight.settings import KERBEROS_FLAVORS, ExportSpec


@dataclass(slots=True)
class ExportDecision:
    pseudo: str
    enabled: bool
    reasons: list[Result] = field(default_factory=list)  # the failed results behind a refusal
    flavors: list[str] = field(default_factory=list)  # the flavors that may be served


def _failed(results: Iterable[Result], ids: Sequence[str]) -> list[Result]:
    wanted = set(ids)
    return [r for r in results if r.id in wanted and r.severity >= Severity.ERROR]


def decide_exports(report: Report, exports: Sequence[ExportSpec]) -> list[ExportDecision]:
    kerberos_failures = _failed(report.results, KERBEROS_PREREQUISITES)
    decisions = []
    for e in exports:
        own = [r for r in report.results if r.key == e.pseudo and r.severity >= Severity.ERROR]
        flavors = list(e.flavors)
        reasons = list(own)
        if e.kerberos and kerberos_failures:
            flavors = [f for f in flavors if f not in KERBEROS_FLAVORS]
            reasons += kerberos_failures
        if own:
            flavors = []
        decisions.append(ExportDecision(e.pseudo, bool(flavors), reasons, flavors))
    return decisions
