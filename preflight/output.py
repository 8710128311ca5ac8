"""Rendering a report for people (text), for programs (JSON) and for Prometheus."""

from __future__ import annotations

import json
import os
import time
from typing import Any, TextIO

from preflight.result import Result, Severity
from preflight.runner import Report

SCHEMA = "securenfs-preflight/1"
_COLOURS = {
    "CRITICAL": "\033[1;31m",
    "ERROR": "\033[31m",
    "WARNING": "\033[33m",
    "OK": "\033[32m",
    "SKIPPED": "\033[2m",
}
_RESET = "\033[0m"


def _gentime(t: float) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


def use_colour(stream: TextIO, requested: str = "auto") -> bool:
    if requested == "always":
        return True
    if requested == "never" or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def summary_line(report: Report) -> str:
    c = report.counts()
    parts = [
        f"{c['CRITICAL']} critical",
        f"{c['ERROR']} error{'s' if c['ERROR'] != 1 else ''}",
        f"{c['WARNING']} warning{'s' if c['WARNING'] != 1 else ''}",
        f"{c['OK']} ok",
    ]
    if c["SKIPPED"]:
        parts.append(f"{c['SKIPPED']} skipped")
    return ", ".join(parts) + f" ({len(report.results)} results in {report.duration:.1f} s)"


def render_human(
    report: Report, out: TextIO, colour: bool = False, show_all: bool = False, verbose: bool = False
) -> None:
    """One line per problem and its remedy; ``verbose`` adds each shown result's detail
    (the KDC answers, the Kerberos error of every principal, the KRB5_TRACE tail)."""

    def paint(status: str, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if colour else text

    order = sorted(report.results, key=lambda r: (r.skipped, -int(r.severity), r.id))
    for r in order:
        if r.severity == Severity.OK and not r.skipped and not show_all:
            continue
        out.write(f"{paint(r.status, f'{r.status:8}')}  {r.id:10} {r.summary}\n")
        if r.remedy and r.severity > Severity.OK:
            out.write(f"{'':10}  -> {r.remedy}\n")
        if verbose and r.detail:
            out.writelines(f"{'':10}   | {line}\n" for line in r.detail.rstrip("\n").splitlines())
    out.write(summary_line(report) + "\n")


def result_dict(r: Result) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": r.id,
        "check": r.check,
        "severity": "skipped" if r.skipped else r.severity.label,
        "level": int(r.severity),
        "summary": r.summary,
        "detail": r.detail,
        "remedy": r.remedy,
        "duration": round(r.duration, 6),
    }
    if r.key:
        d["key"] = r.key
    if r.kw:
        d["kw"] = r.kw
    if r.skipped:
        d["skipped_because"] = r.skipped_because
        d["counts_as"] = r.severity.label
    return d


def render_json(report: Report, exit_code: int) -> str:
    from importlib import metadata

    try:
        version = metadata.version("securenfs")
    except metadata.PackageNotFoundError:
        version = "unknown"
    env = {
        "schema": SCHEMA,
        "tool": {"name": "securenfs-preflight", "version": version},
        "host": report.host,
        "started": _gentime(report.started),
        "duration": round(report.duration, 6),
        "summary": {**report.counts(), "worst": report.worst.label, "exit_code": exit_code},
        "results": [result_dict(r) for r in report.results],
    }
    return json.dumps(env, indent=2, default=str) + "\n"


def _label(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_prometheus(report: Report, prefix: str = "securenfs_preflight") -> str:
    """Text exposition format for node_exporter's textfile collector."""
    lines = [
        f"# HELP {prefix}_check_status Worst severity per check: 0 ok, 10 warning, 20 error, 30 critical.",
        f"# TYPE {prefix}_check_status gauge",
    ]
    worst: dict[tuple[str, str], Result] = {}
    for r in report.results:
        k = (r.id, r.key)
        if k not in worst or r.severity > worst[k].severity:
            worst[k] = r
    for (cid, key), r in sorted(worst.items()):
        labels = f'id="{_label(cid)}",check="{_label(r.check)}"'
        if key:
            labels += f',key="{_label(key)}"'
        labels += f',skipped="{str(r.skipped).lower()}"'
        lines.append(f"{prefix}_check_status{{{labels}}} {int(r.severity)}")
    lines += [
        f"# HELP {prefix}_results Number of results per status.",
        f"# TYPE {prefix}_results gauge",
    ]
    for status, n in report.counts().items():
        lines.append(f'{prefix}_results{{status="{status}"}} {n}')
    offsets = [(r.id, r.kw["offset"]) for r in report.results if "offset" in r.kw]
    if offsets:
        lines += [
            f"# HELP {prefix}_clock_offset_seconds Clock offset against NTP (TIME-001) and the KDC (TIME-004).",
            f"# TYPE {prefix}_clock_offset_seconds gauge",
        ]
        for cid, off in offsets:
            lines.append(f'{prefix}_clock_offset_seconds{{id="{cid}"}} {float(off):.6f}')
    kvnos = [
        (r.key, r.kw["expected"]) for r in report.results if r.id == "KT-006" and "expected" in r.kw
    ]
    if kvnos:
        lines += [
            f"# HELP {prefix}_kdc_kvno Key version the KDC issues tickets under.",
            f"# TYPE {prefix}_kdc_kvno gauge",
        ]
        lines += [f'{prefix}_kdc_kvno{{principal="{_label(k)}"}} {int(v)}' for k, v in kvnos]
    lease = [r.kw["lease_time"] for r in report.results if "lease_time" in r.kw]
    if lease:
        lines += [f"# TYPE {prefix}_lease_seconds gauge", f"{prefix}_lease_seconds {int(lease[0])}"]
    lines += [
        f"# TYPE {prefix}_last_run_timestamp_seconds gauge",
        f"{prefix}_last_run_timestamp_seconds {report.started:.3f}",
        f"# TYPE {prefix}_duration_seconds gauge",
        f"{prefix}_duration_seconds {report.duration:.6f}",
        f"# TYPE {prefix}_worst_level gauge",
        f"{prefix}_worst_level {int(report.worst)}",
    ]
    return "\n".join(lines) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Write then rename, so the textfile collector never reads half a file."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
