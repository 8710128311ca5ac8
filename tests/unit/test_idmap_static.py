"""Static file and nsswitch backends, and the CLI over them."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from idmap import IdmapConfig, SyncIdMapper, build_mapper
from idmap.backends.static import StaticFileError, parse_static
from idmap.cli import main

STATIC = """\
# users and groups of a small site
user  alice 1000 100
user  bob   1001 100   # trailing comment
group staff 100 alice bob
group eng   200 alice
principal alice/admin@EXAMPLE.COM alice
"""


def test_static_file_errors_name_the_line() -> None:
    with pytest.raises(StaticFileError, match=r"f:2: .*'user bob'"):
        parse_static("user alice 1 1\nuser bob\n", "f")
    with pytest.raises(StaticFileError, match="f:1: 'x' is not an id"):
        parse_static("user alice x 1\n", "f")
    with pytest.raises(StaticFileError, match="unknown user 'carol'"):
        parse_static("principal c@R carol\n", "f")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    static = tmp_path / "idmap.static"
    static.write_text(STATIC)
    cfg = tmp_path / "securenfs.toml"
    cfg.write_text(f'[idmap]\ndomain = "example.com"\nlocal_realms = ["EXAMPLE.COM"]\n'
                   f'backends = ["static", "nss"]\n[idmap.static]\npath = "{static}"\n')
    return cfg


def test_static_then_nss_chain(config_file: Path) -> None:
    import tomllib

    cfg = IdmapConfig.from_mapping(tomllib.loads(config_file.read_text())["idmap"])
    m = SyncIdMapper(build_mapper(cfg))
    try:
        ident = m.principal_to_identity("alice@EXAMPLE.COM")
        assert (ident.uid, ident.gid, ident.groups, ident.source) == (1000, 100, (100, 200),
                                                                      "static")
        # An explicit principal line maps an instance principal.
        assert m.principal_to_identity("alice/admin@EXAMPLE.COM").uid == 1000
        # ... but an instance is never mapped through the short name.
        assert m.principal_to_identity("bob/admin@EXAMPLE.COM").source == "anon"
        root = pwd.getpwuid(0).pw_name
        assert m.owner_to_uid(f"{root}@example.com", allow_numeric=False).source == "nss"
        assert m.uid_to_owner(0).name == f"{root}@example.com"
        assert m.gid_to_group(200).name == "eng@example.com"
    finally:
        m.close()


def test_cli_lookup_and_principal(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "lookup", "alice@example.com"]) == 0
    out = capsys.readouterr().out
    assert "alice@example.com -> 1000" in out and "source static" in out
    assert main(["--config", str(config_file), "--json", "principal", "alice@EXAMPLE.COM"]) == 0
    data = json.loads(capsys.readouterr().out)
    r = data["results"][0]
    assert (r["uid"], r["gid"], r["groups"], r["source"], r["cache"]) == (
        1000, 100, [100, 200], "static", "miss")
    assert main(["--config", str(config_file), "lookup", "uid:1001"]) == 0
    assert "bob@example.com" in capsys.readouterr().out
    assert main(["--config", str(config_file), "lookup", "nosuch@example.com"]) == 1
    assert "not found" in capsys.readouterr().out
    assert main(["--config", str(config_file), "principal", "alice@OTHER.ORG"]) == 1
    assert "not in local_realms" in capsys.readouterr().out


@pytest.mark.parametrize("content,expect", [
    (None, "no such file"),
    ("[idmap\n", "not valid TOML"),
    ("[server]\n", "no [idmap] table"),
    ('[idmap]\ndomain = "example.com"\nbackends = ["ldap"]\n', "idmap.ldap"),
    ('[idmap]\ndomain = "example.com"\nbackends = ["static"]\n[idmap.static]\n'
     'path = "/nonexistent/x"\n', "cannot read"),
])
def test_cli_errors_are_clear_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         content: str | None, expect: str) -> None:
    path = tmp_path / "c.toml"
    if content is not None:
        path.write_text(content)
    assert main(["--config", str(path), "lookup", "x@example.com"]) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err


def test_cli_usage_errors(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file), "lookup", "uid:abc"]) == 2
    assert main(["frobnicate"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert os.path.exists(config_file)
