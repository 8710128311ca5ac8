"""Preflight diagnostics: prove that this host can serve Kerberos-secured NFSv4.1.

For the server's start-up::

    from preflight import run_preflight
    from preflight.gate import decide_exports

    report = run_preflight(PreflightSettings.from_server_config(cfg))
    decisions = decide_exports(report, settings.exports)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.runner import Report
    from preflight.settings import PreflightSettings


def run_preflight(
    settings: PreflightSettings, only: Sequence[str] = (), skip: Sequence[str] = ()
) -> Report:
    """Run the registered checks (optionally a selection of ids or id prefixes)."""
    from preflight.registry import load_all
    from preflight.runner import run_checks

    return run_checks(settings, load_all().select(only, skip))
