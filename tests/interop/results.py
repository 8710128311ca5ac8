"""Read the result lines of a guest run and explain a failed check from the server's side.

A scenario prints, per check, ``=== NAME``, the check's output, then
``@@RESULT NAME PASS|FAIL|SKIP detail`` (see guestfs/lib.sh).  When a check fails, the
explanation adds what the server saw while it ran: the NFSv4 operations that failed with their
status (from the relay) and the server's log lines of that interval, so the failure points at
the server capability that is missing rather than at a kernel error number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from tests.interop.guest import GuestResult
from tests.interop.server import InteropServer

_RESULT = re.compile(r"^@@RESULT (\S+) (PASS|FAIL|SKIP) ?(.*)$")


@dataclass(slots=True)
class CheckResult:
    name: str
    status: str
    detail: str
    output: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)


def parse_checks(output: str) -> dict[str, CheckResult]:
    checks: dict[str, CheckResult] = {}
    current: list[str] = []
    needs: list[str] = []
    for line in output.splitlines():
        if line.startswith("=== "):
            current, needs = [], []
            continue
        m = _RESULT.match(line)
        if m:
            checks[m.group(1)] = CheckResult(m.group(1), m.group(2), m.group(3), current, needs)
            current, needs = [], []
            continue
        if line.startswith("@@NEED "):
            needs.append(line[len("@@NEED "):].strip())
            continue
        current.append(line)
    return checks


@dataclass
class ScenarioRun:
    """One guest boot running a group of checks, and the server it talked to."""

    title: str
    result: GuestResult
    server: InteropServer
    checks: dict[str, CheckResult]

    @classmethod
    def of(cls, title: str, result: GuestResult, server: InteropServer) -> ScenarioRun:
        return cls(title, result, server, parse_checks(result.output))

    def window(self, name: str) -> tuple[float, float] | None:
        t0 = t1 = None
        for mark, t in self.result.marks:
            if mark == f"begin-{name}":
                t0 = t
            elif mark == f"end-{name}" and t0 is not None:
                t1 = t
        return (t0, t1) if t0 is not None and t1 is not None else None

    def server_view(self, name: str) -> str:
        w = self.window(name)
        if w is None or self.server.relay is None:
            return "  (no time marks for this check)"
        t0, t1 = w
        lines = []
        fails = self.server.relay.watch.failures_between(t0, t1)
        compounds = self.server.relay.watch.between(t0, t1)
        if fails:
            lines.append("  NFSv4 operations that failed (from the wire):")
            lines += [f"    {what}  x{n}" for what, n in fails.most_common(15)]
        elif compounds:
            lines.append(f"  {len(compounds)} COMPOUNDs, none failed on the wire "
                         "(or they were krb5p-encrypted)")
        else:
            lines.append("  no COMPOUND reached the server during this check")
        log = [ln for ln in self.server.log_between(t0, t1, "INFO")
               if "serving NFSv4.1" not in ln]
        if log:
            lines.append("  server log (INFO and above):")
            lines += ["    " + ln[:300] for ln in log[-20:]]
        return "\n".join(lines)

    def explain(self, name: str) -> str:
        c = self.checks.get(name)
        head = f"[{self.title}] check {name!r}"
        if c is None:
            return (f"{head} did not run (the scenario stopped before it). {self.result.summary()}\n"
                    f"guest output tail:\n{_tail(self.result.output, 30)}\n"
                    f"console tail:\n{_tail(self.result.console_tail, 20)}")
        text = [f"{head}: {c.status} {c.detail}"]
        if c.needs:
            text.append("  needs from the server: " + "; ".join(c.needs))
        text.append("  guest output:")
        text += ["    " + ln for ln in c.output[-40:]]
        text.append(self.server_view(name))
        return "\n".join(text)

    def require(self, *names: str) -> None:
        """Assert that every check in ``names`` passed; a SKIP check skips the test."""
        if not self.result.booted:
            pytest.fail(f"[{self.title}] the guest never reached the scenario: {self.result.summary()}\n"
                        f"console tail:\n{_tail(self.result.console_tail, 30)}")
        failed = [n for n in names if n not in self.checks or self.checks[n].status == "FAIL"]
        if failed:
            pytest.fail("\n\n".join(self.explain(n) for n in failed), pytrace=False)
        skipped = [n for n in names if self.checks[n].status == "SKIP"]
        if skipped:
            pytest.skip("; ".join(f"{n}: " + " ".join(self.checks[n].output[-3:]) for n in skipped))


def _tail(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[-n:])


