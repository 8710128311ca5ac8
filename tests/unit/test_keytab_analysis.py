"""Judging keytabs: permissions, enctypes and kvnos; and the keytab CLI on bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from keytabs.analysis import Level, enctype_finding, file_status, kvno_finding, permission_finding
from keytabs.cli import main
from keytabs.enctypes import Strength, parse_enctype_list, strength
from keytabs.keytab import KeytabEntry, Principal, write_keytab

P = Principal(("nfs", "nfs1.example.com"), "EXAMPLE.COM")


def entries(*pairs: tuple[int, int]) -> list[KeytabEntry]:
    return [KeytabEntry(P, kvno, et, 0, b"x" * 16) for kvno, et in pairs]


@pytest.mark.parametrize(
    "types, level",
    [
        ([18, 17], Level.OK),
        ([18, 23], Level.WARNING),  # RC4 alongside AES
        ([23], Level.ERROR),  # RC4 only
        ([16, 23], Level.ERROR),  # no AES at all
        ([1, 3], Level.CRITICAL),  # single DES only
    ],
)
def test_enctype_levels(types: list[int], level: Level) -> None:
    assert enctype_finding(P, entries(*[(2, t) for t in types])).level == level


def test_enctypes_judged_on_newest_kvno_only() -> None:
    # the old kvno had RC4; the current one is AES only
    assert enctype_finding(P, entries((1, 23), (2, 18))).level == Level.OK


def test_kvno_findings() -> None:
    ents = entries((3, 18), (4, 18))
    assert kvno_finding(P, ents, 4).level == Level.OK
    stale = kvno_finding(P, ents, 5)
    assert (
        stale.level == Level.CRITICAL
        and "the KDC issues 5" in stale.summary
        and "3, 4" in stale.summary
    )
    assert kvno_finding(P, ents, None, error="no KDC").level == Level.WARNING
    assert kvno_finding(P, ents, 4, kdc_enctype=17).level == Level.ERROR


def test_permissions(tmp_path: Path) -> None:
    kt = write_keytab(tmp_path / "k", entries((1, 18)))
    assert permission_finding(file_status(kt)).level == Level.OK
    os.chmod(kt, 0o640)
    assert permission_finding(file_status(kt)).level == Level.WARNING
    os.chmod(kt, 0o644)
    f = permission_finding(file_status(kt))
    assert f.level == Level.ERROR and "chmod 600" in f.remedy
    assert permission_finding(file_status(tmp_path / "none")).level == Level.CRITICAL


def test_enctype_names_and_lists() -> None:
    assert parse_enctype_list("aes256-cts aes128-cts") == {18, 17}
    assert parse_enctype_list("DEFAULT -rc4 -des3") == {18, 17, 20, 19, 26, 25}
    assert parse_enctype_list("rc4-hmac, des3-cbc-sha1") == {23, 16}
    assert (
        strength(23) is Strength.WEAK
        and strength(1) is Strength.DES
        and strength(18) is Strength.STRONG
    )


def test_cli_list_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kt = write_keytab(tmp_path / "k", entries((7, 18)))
    assert main(["list", str(kt), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["entries"][0] == {
        "principal": str(P),
        "kvno": 7,
        "enctype": "aes256-cts-hmac-sha1-96",
        "enctype_number": 18,
        "timestamp": 0,
    }


def test_cli_check_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kt = write_keytab(tmp_path / "k", entries((2, 23)))
    code = main(["check", str(kt), "--hostname", "nfs1.example.com", "--no-kdc"])
    out = capsys.readouterr().out
    assert code == 2 and "has no AES key" in out
    code = main(["check", str(kt), "--hostname", "other.example.com", "--no-kdc"])
    assert code == 2 and "no entry for nfs/other.example.com@EXAMPLE.COM" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"\x05\x02\x00\x00\x00\x40abc", b"\x05\x09", b"garbage!"])
def test_cli_bad_files_never_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    bad = tmp_path / "bad.keytab"
    bad.write_bytes(content)
    assert main(["list", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("securenfs keytab: ") and "Traceback" not in err
    os.chmod(bad, 0o600)
    assert main(["check", str(bad), "--no-kdc"]) == 2
    assert "keytab cannot be used" in capsys.readouterr().out


def test_cli_usage_error_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 3
    assert main([]) == 3
