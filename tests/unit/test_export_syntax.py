"""One ``--export`` syntax for ``serve``, ``check-config`` and ``preflight``: PATH:PSEUDO[:options]."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preflight.cli import main as preflight_main
from securenfs import cli


def test_preflight_reads_the_serve_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    argv = ["--only", "EXP-001,EXP-003", "--format", "json",
            "--export", f"{data}:/data:sec=krb5p,sys", "--export", f"{tmp_path / 'gone'}:/gone:sec=krb5p"]
    assert preflight_main(argv) == 2
    results = json.loads(capsys.readouterr().out)["results"]
    exp1 = {r["key"]: r for r in results if r["id"] == "EXP-001"}
    assert exp1["/data"]["severity"] == "ok" and str(data) in exp1["/data"]["summary"]
    assert exp1["/gone"]["severity"] == "critical" and "does not exist" in exp1["/gone"]["summary"]
    # The flavors were read too: only the export that allows sys is flagged.
    exp3 = {r["key"]: r["severity"] for r in results if r["id"] == "EXP-003" and r.get("key")}
    assert exp3 == {"/data": "warning"}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("/data:/srv/data:krb5p,krb5i", ["lacks sec=", "sec=krb5p,krb5i"]),  # the old PSEUDO:PATH:FLAVORS
        ("/srv/data", ["bad export"]),
        ("data:/data", ["not absolute"]),
        ("/srv/data:/data:sec=krb9", ["unknown security flavor 'krb9'"]),
        ("/srv/data:/data:sec=sys:rw:fast", ["unknown export option 'fast'"]),
        ("/srv/data:data", ["must be absolute"]),
    ],
)
def test_bad_export_forms_are_errors_everywhere(
    spec: str, words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert preflight_main(["--only", "EXP-001", "--export", spec]) == 3
    err = capsys.readouterr().err
    assert err.startswith("securenfs-preflight: --export") and "Traceback" not in err
    assert all(w in err for w in words), err
    for command in ("serve", "check-config"):
        rc = cli.main([command, "--state-dir", str(tmp_path), "--export", spec])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("securenfs: configuration error: <command line>: --export")
        assert all(w in err for w in words), err


def test_check_config_prints_what_the_export_option_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    spec = f"{share}:/share:sec=krb5i,sys:ro:all_squash"
    assert cli.main(["check-config", "--state-dir", str(tmp_path), "--export", spec]) == 0
    out = capsys.readouterr().out
    assert f'path = "{share}"' in out and 'pseudo = "/share"' in out
    assert 'sec = ["krb5i", "sys"]' in out and 'access = "ro"' in out and 'squash = "all"' in out


def test_a_swapped_export_is_refused_not_served(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    swapped = f"/exported-as{data}:{data}:sec=sys"  # PSEUDO:PATH, the path a real directory
    assert preflight_main(["--only", "EXP-001", "--export", swapped]) == 3
    err = capsys.readouterr().err
    assert f"the pseudo path '{data}' is a directory here" in err
    assert f"--export {data}:/exported-as{data}:sec=sys" in err
    assert cli.main(["check-config", "--state-dir", str(tmp_path), "--export", swapped]) == 2
    assert "the form is PATH:PSEUDO" in capsys.readouterr().err
