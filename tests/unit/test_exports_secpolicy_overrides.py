"""SecPolicy overrides (the start-up gate narrowing exports) keep SECINFO and WRONGSEC in step."""

from __future__ import annotations

from pathlib import Path

from securenfs.config import ExportConfig
from securenfs.exports.secpolicy import SecPolicy
from securenfs.exports.table import ExportTable
from securenfs.rpc.auth import PSEUDO_FLAVORS


def _table(tmp_path: Path) -> ExportTable:
    for name in ("k", "m"):
        (tmp_path / name).mkdir()
    return ExportTable.from_config([
        ExportConfig(tmp_path / "k", "/top/k", ["krb5p"]),
        ExportConfig(tmp_path / "m", "/top/m", ["krb5", "sys"]),
    ])


def test_overrides_narrow_exports_and_the_pseudo_union(tmp_path: Path) -> None:
    table = _table(tmp_path)
    full = SecPolicy(table)
    held = SecPolicy(table, overrides={"/top/k": [], "/top/m": ["sys"]})
    k, m = table.exports
    assert full.flavors(k) == ("krb5p",) and held.flavors(k) == ()
    assert held.flavors(m) == ("sys",)
    top = table.root.children["top"]
    assert set(full.flavors(top)) == {"krb5p", "krb5", "sys"}
    assert held.flavors(top) == ("sys",)
    for target in (k, m, top, table.root):
        for name, num in PSEUDO_FLAVORS.items():
            listed = name in [e.name for e in held.secinfo(target)]
            assert held.allows(target, num) is listed, (target, name)
