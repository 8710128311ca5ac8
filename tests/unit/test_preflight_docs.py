"""docs/preflight.md documents every check the registry holds, under its stable id."""

from __future__ import annotations

import re
from pathlib import Path

from preflight.registry import load_all

DOC = Path(__file__).resolve().parents[2] / "docs" / "preflight.md"


def test_every_check_is_documented_with_its_name() -> None:
    text = DOC.read_text()
    documented = set(re.findall(r"^\*\*([A-Z]+-\d{3}) (\w+)\*\*", text, re.M))
    registered = {(c.id, c.name) for c in load_all().checks.values()}
    assert registered - documented == set()
    assert documented - registered == set()
