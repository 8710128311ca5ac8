"""Preflight results: what a check found, how bad it is and what to do about it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Levels and numbers as ipa-healthcheck uses them (SUCCESS 0 ... CRITICAL 30)."""

    OK = 0
    WARNING = 10
    ERROR = 20
    CRITICAL = 30

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {text!r} (use ok, warning, error, critical)"
            ) from None


@dataclass(slots=True)
class Result:
    id: str
    severity: Severity
    summary: str
    detail: str = ""
    remedy: str = ""
    key: str = ""  # makes repeated results of one check unique (per principal, per export ...)
    kw: dict[str, Any] = field(default_factory=dict)  # expected/observed values for machines
    check: str = ""  # the check's name, filled in by the runner
    duration: float = 0.0
    skipped_because: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return bool(self.skipped_because)

    @property
    def status(self) -> str:
        """OK, WARNING, ERROR, CRITICAL or SKIPPED (a skip counts at its cause's severity)."""
        return "SKIPPED" if self.skipped else self.severity.name

    @property
    def failed(self) -> bool:
        return self.severity >= Severity.ERROR


def ok(id: str, summary: str, detail: str = "", **kw: Any) -> Result:
    return Result(id, Severity.OK, summary, detail, kw=kw)


def warning(id: str, summary: str, detail: str = "", remedy: str = "", **kw: Any) -> Result:
    return Result(id, Severity.WARNING, summary, detail, remedy, kw=kw)


def error(id: str, summary: str, detail: str = "", remedy: str = "", **kw: Any) -> Result:
    return Result(id, Severity.ERROR, summary, detail, remedy, kw=kw)


def critical(id: str, summary: str, detail: str = "", remedy: str = "", **kw: Any) -> Result:
    return Result(id, Severity.CRITICAL, summary, detail, remedy, kw=kw)
