"""TIME-*: the clock must agree with NTP and the KDC well inside Kerberos' skew limit.

Kerberos rejects authenticators whose time differs from the acceptor's by more than
``clockskew`` (300 s by default, RFC 4120 §1.6 / krb5.conf(5)): past it every mount fails with
KRB_AP_ERR_SKEW.  We warn well before that.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import ntplib

from preflight.context import RunContext
from preflight.registry import check
from preflight.result import Result, Severity, critical, error, ok, warning
from preflight.settings import split_host_port

REMEDY = (
    "Run a time service pointing at the domain's time sources (AD: the domain controllers; "
    "IPA: the IPA servers): enable chronyd and run `chronyc makestep`."
)


@dataclass(slots=True)
class NtpAnswer:
    server: str
    offset: float | None
    error: str = ""


def query_ntp(ctx: RunContext) -> list[NtpAnswer]:
    def one(server: str) -> NtpAnswer:
        try:
            host, port = split_host_port(server, 123)
            resp = ntplib.NTPClient().request(
                host, version=3, port=port, timeout=ctx.settings.peer_timeout
            )
            return NtpAnswer(server, float(resp.offset))
        except ntplib.NTPException as exc:
            return NtpAnswer(server, None, str(exc))
        except (OSError, ValueError) as exc:
            return NtpAnswer(server, None, getattr(exc, "strerror", None) or str(exc))

    def compute() -> list[NtpAnswer]:
        # Servers are asked in parallel so that several dead ones cost one timeout, not many.
        servers = ctx.settings.ntp_servers
        answers: dict[int, NtpAnswer] = {}

        def run(i: int, server: str) -> None:
            answers[i] = one(server)

        threads = [
            threading.Thread(target=run, args=(i, srv), daemon=True)
            for i, srv in enumerate(servers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(ctx.settings.peer_timeout + 1.0)
        return [answers.get(i, NtpAnswer(srv, None, "no answer")) for i, srv in enumerate(servers)]

    return ctx.memo("ntp", compute)


def judge_offset(ctx: RunContext, id: str, offset: float, against: str) -> Result:
    s = ctx.settings
    a = abs(offset)
    what = f"clock differs from {against} by {offset:+.3f} s"
    kw: dict[str, Any] = {
        "offset": offset,
        "against": against,
        "warn": s.clock_warn,
        "error": s.clock_error,
        "clockskew": s.clockskew,
    }
    if a >= s.clockskew:
        return critical(
            id,
            f"{what}: beyond Kerberos' {s.clockskew:g} s limit",
            "Every Kerberos authentication fails with 'Clock skew too great'.",
            REMEDY,
            **kw,
        )
    if a >= s.clock_error:
        return error(
            id,
            f"{what} (error threshold {s.clock_error:g} s)",
            f"Kerberos fails at {s.clockskew:g} s; this clock is drifting towards it.",
            REMEDY,
            **kw,
        )
    if a >= s.clock_warn:
        return warning(
            id,
            f"{what} (warning threshold {s.clock_warn:g} s)",
            "Leases and ticket lifetimes are judged on this clock.",
            REMEDY,
            **kw,
        )
    return ok(id, what, **kw)


@check("TIME-003", "NtpServersAnswer")
def ntp_reachable(ctx: RunContext) -> Result:
    """At least one configured NTP server answers, so the clock can be measured."""
    if not ctx.settings.ntp_servers:
        return warning(
            "TIME-003",
            "no NTP servers configured; the clock offset is not measured",
            remedy="List the domain's time sources under [preflight] ntp_servers (or --ntp-server).",
        )
    answers = query_ntp(ctx)
    dead = [a for a in answers if a.offset is None]
    detail = "\n".join(f"{a.server}: {a.error}" for a in dead)
    if len(dead) == len(answers):
        return warning(
            "TIME-003",
            f"no NTP server answered ({len(dead)} tried)",
            detail,
            "Allow UDP port 123 to the time servers, or fix the server list.",
            servers=[a.server for a in answers],
        )
    if dead:
        return warning(
            "TIME-003",
            f"{len(dead)} of {len(answers)} NTP servers did not answer",
            detail,
            "Remove dead servers from the list or fix their reachability.",
        )
    return ok("TIME-003", f"all {len(answers)} NTP servers answered")


@check("TIME-001", "ClockOffsetVsNtp")
def ntp_offset(ctx: RunContext) -> Result:
    """The local clock against each configured NTP server."""
    answers = [a for a in query_ntp(ctx) if a.offset is not None]
    if not answers:
        why = (
            "no NTP servers configured"
            if not ctx.settings.ntp_servers
            else "no NTP server answered"
        )
        return Result(
            "TIME-001",
            Severity.OK if not ctx.settings.ntp_servers else Severity.WARNING,
            f"clock offset not measured: {why}",
            skipped_because=["TIME-003"],
        )
    worst = max(answers, key=lambda a: abs(a.offset or 0.0))
    res = judge_offset(ctx, "TIME-001", worst.offset or 0.0, f"NTP server {worst.server}")
    res.detail = "\n".join(
        filter(None, [res.detail] + [f"{a.server}: {a.offset:+.3f} s" for a in answers])
    )
    return res


@check("TIME-004", "ClockOffsetVsKdc", requires=("KDC-001",))
def kdc_offset(ctx: RunContext) -> Result:
    """The local clock against the KDC's, learned from its KRB-ERROR timestamp."""
    from preflight.checks.kerberos import kdc_answers

    answers = [a for a in kdc_answers(ctx) if a.offset is not None]
    if not answers:
        return warning(
            "TIME-004",
            "could not learn the KDC's time",
            remedy="See KDC-001: no KDC answered with a timestamp.",
        )
    worst = max(answers, key=lambda a: abs(a.offset or 0.0))
    return judge_offset(ctx, "TIME-004", worst.offset or 0.0, f"KDC {worst.host}:{worst.port}")
