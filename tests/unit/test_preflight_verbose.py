"""`securenfs preflight --verbose`: the detail docs/preflight.md promises, under each result."""

from __future__ import annotations

import io

from preflight.output import render_human
from preflight.result import Result, Severity
from preflight.runner import Report

FAILED = Result("KDC-002", Severity.CRITICAL, "no TGT from the keytab: stale", remedy="Re-export.",
                detail="host/a@R: Decrypt integrity check failed\n\nKRB5_TRACE:\n[1] Sending request\n")
PASSED = Result("KT-001", Severity.OK, "keytab fine", detail="3 keys")


def render(verbose: bool, show_all: bool = False) -> list[str]:
    out = io.StringIO()
    render_human(Report([FAILED, PASSED], 0.0, 0.1), out, show_all=show_all, verbose=verbose)
    return out.getvalue().splitlines()


def test_detail_only_with_verbose() -> None:
    assert render(False)[:2] == ["CRITICAL  KDC-002    no TGT from the keytab: stale", "            -> Re-export."]
    assert not any("|" in ln for ln in render(False))
    lines = render(True)
    assert lines[2:6] == ["             | host/a@R: Decrypt integrity check failed", "             | ",
                          "             | KRB5_TRACE:", "             | [1] Sending request"]
    assert lines[6].startswith("1 critical") and len(lines) == 7  # passing results stay hidden


def test_verbose_with_all_shows_passing_details_too() -> None:
    lines = render(True, show_all=True)
    assert "OK        KT-001     keytab fine" in lines and "             | 3 keys" in lines
