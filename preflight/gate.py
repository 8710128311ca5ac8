"""Deciding which exports may be served, from a preflight report (at start and on every re-run).

A Kerberos flavor is served only when every check it depends on passed (below ERROR); an
AUTH_SYS-only export never waits on Kerberos.  Results that name an export (``key`` equal to its
pseudo path) count for that export whatever its flavors.

Two rules narrow what counts as a Kerberos failure:

* The clock: Kerberos needs the local clock to agree with the KDC's (RFC 4120 §1.6).  TIME-004
  measures exactly that; when it passed, a TIME-001 failure (the clock disagrees with a configured
  NTP server) means that NTP server is wrong or unreachable, and alone it does not hold Kerberos back.
* Once Kerberos has served: the acceptor needs only its keytab, not the KDC, NTP or DNS, so
  failures of those peers are reported but switch nothing off; only a broken or missing keytab
  key does (:data:`KEYTAB_CHECKS`, and KT-006 when the KDC answered with a key version the keytab
  lacks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from preflight.checks.exports import KERBEROS_PREREQUISITES
from preflight.result import Result, Severity
from preflight.runner import Report
from preflight.settings import ExportSpec
from securenfs.rpc.auth import KERBEROS_FLAVORS


@dataclass(slots=True)
class ExportDecision:
    pseudo: str
    enabled: bool
    reasons: list[Result] = field(default_factory=list)  # the failed results behind a refusal
    flavors: list[str] = field(default_factory=list)  # the flavors that may be served


def _failed(results: Iterable[Result], ids: Sequence[str]) -> list[Result]:
    wanted = set(ids)
    return [r for r in results if r.id in wanted and r.severity >= Severity.ERROR]


#: Checks of the keytab itself (no peer involved): the only ones that switch off a Kerberos
#: flavor that has already served.
KEYTAB_CHECKS = ("KT-001", "KT-002", "KT-003")


def _broken_key(r: Result) -> bool:
    if r.skipped:
        return False
    # KT-006 with the KDC's key version in hand: the keytab lacks the key clients get tickets for.
    return r.id in KEYTAB_CHECKS or (r.id == "KT-006" and r.kw.get("expected") is not None)


def kerberos_failures(results: Sequence[Result], served: bool = False) -> list[Result]:
    """The failed results that hold the Kerberos flavors back.  ``served``: Kerberos has
    already served since the server started (then only a broken keytab counts)."""
    failed = _failed(results, KERBEROS_PREREQUISITES)
    if any(r.id == "TIME-004" and r.severity < Severity.ERROR and not r.skipped for r in results):
        failed = [r for r in failed if r.id != "TIME-001"]
    if served:
        failed = [r for r in failed if _broken_key(r)]
    return failed


def decide_exports(report: Report, exports: Sequence[ExportSpec], *, served: bool = False) -> list[ExportDecision]:
    failures = kerberos_failures(report.results, served)
    decisions = []
    for e in exports:
        own = [r for r in report.results if r.key == e.pseudo and r.severity >= Severity.ERROR]
        flavors = list(e.flavors)
        reasons = list(own)
        if e.kerberos and failures:
            flavors = [f for f in flavors if f not in KERBEROS_FLAVORS]
            reasons += failures
        if own:
            flavors = []
        decisions.append(ExportDecision(e.pseudo, bool(flavors), reasons, flavors))
    return decisions
