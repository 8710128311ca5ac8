"""What an administrator reads when the configuration is wrong: one test per error form."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from preflight.cli import main as preflight_main
from securenfs import cli
from securenfs import config as c

LDAP = '[idmap]\ndomain = "example.com"\nbackends = ["ldap"]\n[idmap.ldap]\nbase = "dc=example,dc=com"\n'


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "securenfs.toml"
    p.write_text(text)
    return p


def load_error(tmp_path: Path, text: str) -> c.ConfigError:
    with pytest.raises(c.ConfigError) as ei:
        c.load(write(tmp_path, text))
    return ei.value


def test_unknown_key_is_named_before_the_missing_required_one(tmp_path: Path) -> None:
    # "uri" is a misspelt "uris", which is required: the spelling is what to report.
    e = load_error(tmp_path, LDAP + 'uri = ["ldap://127.0.0.1"]\n')
    assert (e.key, e.message, e.fix) == ("idmap.ldap.uri", "unknown key", "did you mean idmap.ldap.uris?")
    e = load_error(tmp_path, '[[exports]]\npth = "/srv"\n')
    assert (e.key, e.message, e.fix) == ("exports[0].pth", "unknown key", "did you mean exports[0].path?")
    # Without the misspelling, the missing key is reported.
    e = load_error(tmp_path, LDAP)
    assert e.key == "idmap.ldap.uris" and "required" in e.message


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ("[server]\nleas_time = 90\n", "server.leas_time", "server.lease_time"),
        ('[kerberos]\nkeytabs = "/k"\n', "kerberos.keytabs", "kerberos.keytab"),
        ('[preflight]\nntp_server = ["a"]\n', "preflight.ntp_server", "preflight.ntp_servers"),
        ('[recovery]\netcd_prefx = "/x"\n', "recovery.etcd_prefx", "recovery.etcd_prefix"),
        ('[idmap]\ndomian = "example.com"\n', "idmap.domian", "idmap.domain"),
        ('[idmap]\ndomain = "example.com"\n[idmap.cache]\npositive_tll = 5\n',
         "idmap.cache.positive_tll", "idmap.cache.positive_ttl"),
        ('[idmap]\ndomain = "example.com"\n[idmap.numeric]\naccept_from_sis = true\n',
         "idmap.numeric.accept_from_sis", "idmap.numeric.accept_from_sys"),
        ('[idmap]\ndomain = "example.com"\n[idmap.machine_principals]\npolcy = "anon"\n',
         "idmap.machine_principals.polcy", "idmap.machine_principals.policy"),
        (LDAP + 'uris = ["ldap://h"]\n[idmap.ldap.attributes]\nuid_numbr = "x"\n',
         "idmap.ldap.attributes.uid_numbr", "idmap.ldap.attributes.uid_number"),
        ('[idmap]\ndomain = "example.com"\nbackends = ["static"]\n[idmap.static]\npaht = "/x"\n',
         "idmap.static.paht", "idmap.static.path"),
        ('[[exports]]\npath = "/srv"\npsuedo = "/s"\n', "exports[0].psuedo", "exports[0].pseudo"),
        ('[[exports]]\npath = "/srv"\n[[exports.clients]]\nacess = "ro"\n',
         "exports[0].clients[0].acess", "exports[0].clients[0].access"),
        ('[[export]]\npath = "/srv"\n', "export", "exports"),
    ],
)
def test_every_section_suggests_the_known_key(tmp_path: Path, text: str, key: str, suggestion: str) -> None:
    e = load_error(tmp_path, text)
    assert e.key == key and e.message == "unknown key"
    assert e.fix == f"did you mean {suggestion}?"


def test_an_unknown_key_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    e = load_error(tmp_path, "[kerberos]\nzzz = 1\n")
    assert e.key == "kerberos.zzz" and "keytab" in e.fix and "principals" in e.fix


@pytest.mark.parametrize(
    ("text", "key", "message", "fix"),
    [
        ('[server]\nlease_time = "90s"\n', "server.lease_time",
         'expected an integer number of seconds, e.g. 90, got "90s"', "write lease_time = 90"),
        ("[server]\nlease_time = 90.5\n", "server.lease_time",
         "expected an integer number of seconds, e.g. 90, got 90.5", "write lease_time = 90"),
        ('[kerberos]\ncontext_idle_timeout = "1h"\n', "kerberos.context_idle_timeout",
         'expected an integer number of seconds, e.g. 3600, got "1h"', "write context_idle_timeout = 3600"),
        ('[server]\ninline_metadata = "yes"\n', "server.inline_metadata",
         'expected true or false, got "yes"', "write inline_metadata = true"),
        ('[preflight]\ntimeout = "10s"\n', "preflight.timeout",
         'expected a number of seconds, e.g. 10, got "10s"', "write timeout = 10.0"),
        ("[kerberos]\nprincipals = [1]\n", "kerberos.principals",
         "expected a list of strings, got 1", 'write principals = ["...", "..."]'),
        ('[idmap]\ndomain = "example.com"\noutage_delay = "30s"\n', "idmap.outage_delay",
         'expected a number of seconds, e.g. 30, got "30s"', "set idmap.outage_delay to a number of seconds, e.g. 30"),
        ("[exports]\npath = \"/srv\"\n", "exports", 'expected a list, got {path = "/srv"}', "[[exports]]"),
        ('[[exports]]\npath = "/srv"\n[exports.clients]\nmatch = "*"\n', "exports[0].clients",
         'expected a list, got {match = "*"}', "[[exports.clients]]"),
    ],
)
def test_a_wrong_type_says_the_expected_form(tmp_path: Path, text: str, key: str, message: str, fix: str) -> None:
    e = load_error(tmp_path, text)
    assert e.key == key and e.message.startswith(message) and fix in e.fix


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    e = load_error(tmp_path, '[server]\nlease_time = 90\nstate_dir = /var/lib/x\n')
    assert e.source == str(tmp_path / "securenfs.toml")
    assert e.key == "line 3, column 13" and e.message.startswith("TOML syntax error: Invalid value")
    assert "(at line" not in str(e)  # said once, in front
    e = load_error(tmp_path, '[server]\nlease_time = 90\nx = ')
    assert e.key == "line 3 (end of file)"


@pytest.mark.parametrize("text", ['[server]\nleas_time = 90\n', '[server]\nstate_dir = /x\n',
                                  '[server]\nlease_time = "90s"\n'])
def test_the_file_name_is_printed_once(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, text)
    assert cli.main(["check-config", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(p)) == 1 and err.startswith(f"securenfs: configuration error: {p}: ")
    assert preflight_main(["--config", str(p)]) == 3
    err = capsys.readouterr().err
    assert err.count(str(p)) == 1 and err.startswith(f"securenfs-preflight: {p}: ")


def test_check_config_refuses_what_serve_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (tmp_path / "file").write_text("x")
    text = f'[server]\nstate_dir = "{tmp_path}"\n[[exports]]\npath = "{share}"\npseudo = "/s"\nsec = ["sys"]\n'
    p = write(tmp_path, text)
    assert cli.main(["check-config", "--config", str(p)]) == 0
    capsys.readouterr()
    for path, why in ((tmp_path / "gone", "does not exist"), (tmp_path / "file", "not a directory")):
        p = write(tmp_path, text.replace(str(share), str(path)))
        assert cli.main(["check-config", "--config", str(p)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and why in captured.err and "exports[0]" in captured.err
        assert captured.err.startswith(f"securenfs: configuration error: {p}: exports: ")
        # serve stops at the same place, before it listens.
        proc = subprocess.run([sys.executable, "-m", "securenfs", "serve", "--config", str(p), "--no-preflight",
                               "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode != 0 and why in proc.stderr


def test_check_config_prints_every_default_including_idmap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (f'[server]\nstate_dir = "{tmp_path}"\nhostname = "nfs1.example.com"\n'
            + LDAP.replace("[idmap.ldap]", 'local_realms = ["EXAMPLE.COM"]\n[idmap.ldap]')
            + 'uris = ["ldap://127.0.0.1:3389"]\nbind = "simple"\nbind_dn = "cn=x"\nbind_password = "secret"\n')
    p = write(tmp_path, text)
    assert cli.main(["check-config", "--config", str(p)]) == 0
    out = capsys.readouterr().out
    for line in ("[idmap]", "anon_uid = 65534", "outage_delay = 30.0", "[idmap.cache]", "positive_ttl = 600.0",
                 "[idmap.machine_principals]", 'policy = "anon"', "[idmap.ldap]", 'user_base = "dc=example,dc=com"',
                 "timeout = 4.0", "[idmap.ldap.attributes]", 'uid_number = "uidNumber"', "[recovery]",
                 'etcd_prefix = "/securenfs"', "[preflight]", "strict = false"):
        assert line in out.splitlines(), line
    assert "secret" not in out and "the bind password is set (not shown)" in out
    # The principals the server accepts by default: nfs/ and host/, not only nfs/.
    assert ("# principals not set: tickets for nfs/nfs1.example.com and host/nfs1.example.com of any realm "
            "are accepted") in out
    # What check-config prints is itself a configuration that parses to the same mapping.
    again = tomllib.loads(out)
    assert again["idmap"]["ldap"]["attributes"]["member"] == "memberUid"
    assert "principals" not in again["kerberos"]


def test_check_config_without_idmap_says_owners_are_numeric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, f'[server]\nstate_dir = "{tmp_path}"\n')
    assert cli.main(["check-config", "--config", str(p)]) == 0
    assert "# [idmap] not set: owners and groups are sent and accepted as numeric ids" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        # TOML puts a key written below a [table] header into that table.
        ('[server]\nstate_dir = "/s"\n[[exports]]\npath = "/srv"\nlease_time = 60\n', "exports[0].lease_time",
         "lease_time is a key of [server]: a key written below a [table] header belongs to that table, "
         "so move it into [server]"),
        ('[[exports]]\npath = "/srv"\n[[exports.clients]]\nmatch = "*"\nsec = ["sys"]\n',
         "exports[0].clients[0].sec", "sec is a key of [[exports]]"),
        ('[preflight]\nprincipals = ["nfs/h"]\n', "preflight.principals", "principals is a key of [kerberos]"),
        (LDAP + 'uris = ["ldap://h"]\nlocal_realms = ["EXAMPLE.COM"]\n', "idmap.ldap.local_realms",
         "local_realms is a key of [idmap]: a key written below a [table] header belongs to that table, "
         "so move it above the [idmap.ldap] header"),
        ('[idmap]\ndomain = "example.com"\n[idmap.cache]\ntimeout = 3\n', "idmap.cache.timeout",
         "timeout is a key of [idmap.ldap]: a key written below a [table] header belongs to that table, "
         "so move it below the [idmap.ldap] header"),
        ('[idmap]\ndomain = "example.com"\ntimeout = 3\n', "idmap.timeout",
         "timeout is a key of [idmap.ldap]: write it below the [idmap.ldap] header"),
    ],
)
def test_a_key_in_the_wrong_table_names_its_table(tmp_path: Path, text: str, key: str, fix: str) -> None:
    e = load_error(tmp_path, text)
    assert e.key == key and e.message == "unknown key" and e.fix.startswith(fix)
