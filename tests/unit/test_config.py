"""Configuration: parsing, validation messages, command-line overrides, check-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from securenfs import cli
from securenfs import config as c


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "securenfs.toml"
    p.write_text(text)
    return p


def test_full_file(tmp_path: Path) -> None:
    p = write(tmp_path, """
[server]
listen = ["127.0.0.1:2049", "[::1]:2050"]
state_dir = "/var/lib/x"
server_owner = "nfs-cluster-1"
server_scope = "example.com"
lease_time = 60

[kerberos]
keytab = "/etc/nfs.keytab"
principals = ["nfs/nfs1.example.com"]
context_idle_timeout = 600

[idmap]
domain = "example.com"

[[exports]]
path = "/srv/a"
pseudo = "/a"
sec = ["krb5p"]
[[exports.clients]]
match = "10.0.0.0/8"
access = "ro"
squash = "all"
anonuid = 1234

[[exports]]
path = "/srv/b"
pseudo = "/proj/b"
sec = ["sys", "krb5"]
""")
    cfg = c.load(p)
    assert [str(a) for a in cfg.server.listen] == ["127.0.0.1:2049", "[::1]:2050"]
    assert cfg.server.grace_time == 60  # defaults to the lease time
    assert cfg.kerberos.keytab == Path("/etc/nfs.keytab")
    assert cfg.kerberos.context_idle_timeout == 600
    assert cfg.idmap_raw == {"domain": "example.com"}
    a, b = cfg.exports
    assert a.sec == ["krb5p"] and a.clients[0].access == "ro" and a.clients[0].anonuid == 1234
    assert b.pseudo == "/proj/b" and b.needs_kerberos
    assert any("sec=sys" in w for w in cfg.warnings)
    # the dump is itself a valid config that parses to the same thing
    again = c.parse(__import__("tomllib").loads(c.dump(cfg)), "dump")
    assert again.exports[0].clients[0].squash == "all"
    assert again.server.server_owner == "nfs-cluster-1"


@pytest.mark.parametrize(
    ("text", "key", "fix_word"),
    [
        ('[server]\nlisten = ["1.2.3.4:99999"]', "server.listen", "HOST:PORT"),
        ("[server]\nlease_time = 0", "server.lease_time", "between"),
        ('[server]\nlease_time = "90"', "server.lease_time", ""),
        ("[server]\nbogus = 1", "server.bogus", "known keys are admin_socket"),
        ("[server]\nmax_clients = -1", "server.max_clients", "between 0"),
        ("[server]\nmax_sessions_per_client = 0", "server.max_sessions_per_client", "between 1"),
        ('[[exports]]\npath = "relative"', "exports[0].path", "absolute"),
        ('[[exports]]\npath = "/srv"\nsec = ["krb6"]', "exports[0].sec", "krb5p"),
        ('[[exports]]\npath = "/srv"\nsec = []', "exports[0].sec", "sec ="),
        ('[[exports]]\npath = "/srv"\n[[exports.clients]]\naccess = "write"', "exports[0].clients[0].access", "rw"),
        ('[[exports]]\npath = "/a"\npseudo = "/x"\n[[exports]]\npath = "/b"\npseudo = "/x"', "exports[1].pseudo", "own"),
        ('[[exports]]\npath = "/a"\npseudo = "/x"\n[[exports]]\npath = "/b"\npseudo = "/x/y"', "exports[1].pseudo", "sibling"),
        ("[kerberos\nkeytab=1", "line 1, column 10", "syntax"),
    ],
)
def test_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str, fix_word: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(c.ConfigError) as ei:
        c.load(p)
    e = ei.value
    assert e.source == str(p)
    assert e.key == key
    assert fix_word in e.fix or fix_word in e.message
    assert str(p) in str(e) and key in str(e)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(c.ConfigError, match="not found"):
        c.load(tmp_path / "nope.toml")
    assert c.load(tmp_path / "nope.toml", required=False).exports == []


def test_export_option() -> None:
    e = c.parse_export_option("/srv/share:/share:sec=krb5p,krb5i,sys:ro")
    assert (e.path, e.pseudo, e.sec, e.clients[0].access) == (Path("/srv/share"), "/share", ["krb5p", "krb5i", "sys"], "ro")
    assert c.parse_export_option("/srv:/s").sec == ["krb5p", "krb5i", "krb5"]
    for bad in ("/srv", "srv:/s", "/srv:/s:sec=foo", "/srv:/s:weird"):
        with pytest.raises(c.ConfigError):
            c.parse_export_option(bad)


def test_command_line_overrides_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, '[server]\nlisten = ["0.0.0.0:2049"]\nstate_dir = "/x"\n[[exports]]\npath = "/a"\npseudo = "/a"\n')
    rc = cli.main(["check-config", "--config", str(p), "--listen", "127.0.0.1:3049",
                   "--state-dir", str(tmp_path), "--export", f"{tmp_path}:/b:sec=sys"])
    assert rc == 0
    out = capsys.readouterr().out
    assert 'listen = ["127.0.0.1:3049"]' in out
    assert f'state_dir = "{tmp_path}"' in out
    assert f'path = "{tmp_path}"' in out and 'path = "/a"' not in out


def test_cli_reports_config_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "[server]\nlease_time = -5\n")
    assert cli.main(["check-config", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "server.lease_time" in err and "Traceback" not in err


@pytest.mark.parametrize(("rule", "addr", "ok"), [
    ("*", "1.2.3.4", True), ("10.0.0.0/8", "10.1.2.3", True), ("10.0.0.0/8", "11.0.0.1", False),
    ("::1/128", "::1", True), ("127.0.0.0/8", "::ffff:127.0.0.1", True)])
def test_client_rule_matching(rule: str, addr: str, ok: bool) -> None:
    assert c.ClientRule(match=rule).matches_address(addr) is ok
