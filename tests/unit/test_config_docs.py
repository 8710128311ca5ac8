"""docs/ names every configuration key the parsers accept, the command-line options of
`securenfs preflight`, and the same acceptor-principal default in both places it is given."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from idmap import config as idmap_config
from preflight.cli import build_parser
from securenfs import config
from securenfs.rpcsec_gss.constants import DEFAULT_ACCEPTOR_SERVICES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented(text: str, key: str) -> bool:
    """In a table cell or prose (`key`), a TOML example (key =) or a table header ([x.key])."""
    return (f"`{key}`" in text or f"`{key} =" in text or re.search(rf"^\s*{re.escape(key)}\s*=", text, re.M) is not None
            or f".{key}]" in text)


@pytest.mark.parametrize("record", [config.ServerConfig, config.KerberosConfig, config.PreflightConfig,
                                    config.ExportConfig, config.ClientRule])
def test_every_server_key_is_in_configuration_md(record: type) -> None:
    text = (DOCS / "configuration.md").read_text()
    assert [k for k in config.field_names(record) if not documented(text, k)] == []


@pytest.mark.parametrize("keys", [
    idmap_config.IDMAP_KEYS, idmap_config.LDAP_KEYS, idmap_config.MACHINE_KEYS,
    tuple(f.name for f in dataclasses.fields(idmap_config.CacheConfig)),
    tuple(f.name for f in dataclasses.fields(idmap_config.NumericConfig)),
])
def test_every_idmap_key_is_in_idmap_md(keys: tuple[str, ...]) -> None:
    text = (DOCS / "idmap.md").read_text()
    assert [k for k in keys if not documented(text, k)] == []


def test_every_preflight_option_is_in_preflight_md() -> None:
    text = (DOCS / "preflight.md").read_text()
    options = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")]
    assert [o for o in options if o != "--help" and f"`{o}" not in text] == []


@pytest.mark.parametrize("doc", ["configuration.md", "rpcsec_gss.md"])
def test_the_principals_default_is_what_the_acceptor_does(doc: str) -> None:
    row = next(ln for ln in (DOCS / doc).read_text().splitlines() if ln.startswith("| `principals` |"))
    default = row.split("|")[2]
    assert all(f"`{svc}/<hostname>`" in default for svc in DEFAULT_ACCEPTOR_SERVICES), row
    assert "at least one" in default
