"""`securenfs idmap`: options after the command word, and exit status 1 for every mapping
that ends at the anonymous id or at no name (docs/idmap.md, "CLI")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idmap.cli import main

STATIC = "user alice 1000 100\ngroup staff 100 alice\n"


def config(tmp_path: Path, machine: str = "") -> Path:
    static = tmp_path / "idmap.static"
    static.write_text(STATIC)
    cfg = tmp_path / "securenfs.toml"
    cfg.write_text(f'[idmap]\ndomain = "example.com"\nlocal_realms = ["EXAMPLE.COM"]\n'
                   f'backends = ["static"]\n[idmap.static]\npath = "{static}"\n{machine}')
    return cfg


def test_options_go_before_or_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(config(tmp_path))
    for argv in (["--config", cfg, "--json", "principal", "alice@EXAMPLE.COM"],
                 ["principal", "alice@EXAMPLE.COM", "--config", cfg, "--json"],
                 ["--json", "principal", "--config", cfg, "alice@EXAMPLE.COM"]):
        assert main(argv) == 0, argv
        assert json.loads(capsys.readouterr().out)["results"][0]["uid"] == 1000
    # Not given anywhere: the default file, which does not exist here.
    assert main(["lookup", "alice@example.com", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "code", "source"), [
    (["principal", "alice@EXAMPLE.COM"], 0, "static"),
    (["principal", "alice@OTHER.ORG"], 1, "anon"),  # a foreign realm
    (["principal", "carol@EXAMPLE.COM"], 1, "anon"),  # unknown user
    (["principal", "nfs/client.example.com@EXAMPLE.COM"], 1, "machine"),  # runs as 65534 by policy
    (["lookup", "uid:1000"], 0, "static"),
    (["lookup", "uid:4242"], 1, "numeric"),  # sent as digits: no name
])
def test_exit_status_is_1_for_anonymous_and_unnamed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, source: str
) -> None:
    assert main([*argv, "--config", str(config(tmp_path)), "--json"]) == code
    (r,) = json.loads(capsys.readouterr().out)["results"]
    assert r["source"] == source and r["mapped"] is (code == 0)


def test_machine_principal_with_its_own_id_is_mapped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config(tmp_path, '[idmap.machine_principals]\npolicy = "id"\nuid = 990\ngid = 990\n')
    assert main(["principal", "nfs/client.example.com@EXAMPLE.COM", "--config", str(cfg)]) == 0
    assert "uid     990" in capsys.readouterr().out
