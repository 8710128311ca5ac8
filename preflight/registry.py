"""The catalogue of checks: each has a stable id, a name, prerequisites and a function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from preflight.context import RunContext
    from preflight.result import Result

CheckOutput = Union["Result", list["Result"]]
Requires = Union[Sequence[str], Callable[["RunContext"], Sequence[str]]]  # noqa: UP007


@dataclass(slots=True)
class Check:
    id: str
    name: str
    area: str
    func: Callable[[RunContext], CheckOutput]
    # Prerequisites: when one of them ends at ERROR or worse, this check is SKIPPED.
    requires: Requires = ()
    # Strict prerequisites: skipped already when one of them ends at WARNING.
    requires_clean: Sequence[str] = ()
    doc: str = ""

    def prerequisites(self, ctx: RunContext) -> list[str]:
        req = self.requires(ctx) if callable(self.requires) else self.requires
        return list(dict.fromkeys([*req, *self.requires_clean]))


@dataclass(slots=True)
class Registry:
    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, check: Check) -> None:
        if check.id in self.checks:
            raise ValueError(f"duplicate check id {check.id}")
        self.checks[check.id] = check

    def select(self, only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Check]:
        """Checks to run; ids match exactly or by prefix (``DNS`` selects every DNS-nnn)."""

        def hit(cid: str, pats: Sequence[str]) -> bool:
            return any(cid == p or cid.startswith(p.rstrip("-") + "-") for p in pats)

        unknown = [p for p in [*only, *skip] if not any(hit(c, [p]) for c in self.checks)]
        if unknown:
            raise ValueError(f"unknown check id(s): {', '.join(unknown)} (see --list)")
        chosen = [c for c in self.checks.values() if not only or hit(c.id, only)]
        return [c for c in chosen if not hit(c.id, skip)]


REGISTRY = Registry()


def check(
    id: str,
    name: str,
    requires: Requires = (),
    requires_clean: Sequence[str] = (),
    doc: str = "",
) -> Callable[[Callable[[RunContext], CheckOutput]], Callable[[RunContext], CheckOutput]]:
    """Register a check function under a stable id."""

    def deco(func: Callable[[RunContext], CheckOutput]) -> Callable[[RunContext], CheckOutput]:
        area = func.__module__.rsplit(".", 1)[-1]
        REGISTRY.add(
            Check(
                id, name, area, func, requires, requires_clean, doc or (func.__doc__ or "").strip()
            )
        )
        return func

    return deco


def load_all() -> Registry:
    """Import every check module so that its checks are registered."""
    from preflight.checks import ALL_MODULES  # noqa: F401  (import registers the checks)

    return REGISTRY
