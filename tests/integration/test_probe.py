"""`securenfs probe` as an administrator runs it: a separate process against the real server
process (`securenfs serve`) and a real MIT KDC, under AUTH_SYS and krb5p, and each failure
explained with its cause and fix.  After every failure a good probe shows the server still
serves.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.probe import Outcome
from tests.support.kdc import KdcRealm

ALICE_UID = 5001


@dataclass
class Served:
    port: int
    env: dict[str, str]
    realm: KdcRealm
    secure: Path
    public: Path
    ccache: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(kdc_realm: KdcRealm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server process: /secure (krb5p) and /public (sys), static idmap with alice."""
    tmp = tmp_path_factory.mktemp("probe")
    secure, public = tmp / "secure", tmp / "public"
    secure.mkdir()
    public.mkdir()
    os.chmod(public, 0o755)  # owned by root: uid 1000 may list, not write
    (public / "readme.txt").write_text("public\n")
    home = secure / "alice"
    home.mkdir()
    os.chown(home, ALICE_UID, ALICE_UID)
    (home / "notes.txt").write_text("alice's\n")
    os.chown(home / "notes.txt", ALICE_UID, ALICE_UID)
    idmap = tmp / "idmap.static"
    idmap.write_text(f"user alice {ALICE_UID} {ALICE_UID}\ngroup alice {ALICE_UID} alice\n")
    port = _free_port()
    conf = tmp / "securenfs.toml"
    conf.write_text(f"""\
[server]
listen = ["127.0.0.1:{port}"]
state_dir = "{tmp / 'state'}"
hostname = "{kdc_realm.hostname}"
grace_time = 30

[kerberos]
keytab = "{kdc_realm.service_keytab}"

[idmap]
domain = "{kdc_realm.realm.lower()}"
local_realms = ["{kdc_realm.realm}"]
backends = ["static"]

[idmap.static]
path = "{idmap}"

[[exports]]
path = "{secure}"
pseudo = "/secure"
sec = ["krb5p"]
[[exports.clients]]
match = "*"
squash = "root"

[[exports]]
path = "{public}"
pseudo = "/public"
sec = ["sys"]
[[exports.clients]]
match = "*"
squash = "none"
""")
    env = dict(os.environ, KRB5_CONFIG=str(kdc_realm.krb5_conf), KRB5RCACHEDIR=str(kdc_realm.tmpdir))
    env.pop("KRB5CCNAME", None)
    ready = tmp / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "securenfs", "serve", "--config", str(conf), "--no-preflight",
                             "--ready-file", str(ready)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text().strip()):
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield Served(port, env, kdc_realm, secure, public, kdc_realm.user_ccache("alice"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def probe(s: Served, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "securenfs", "probe", *args], capture_output=True, text=True,
                          env=env or s.env, timeout=60)


def probe_json(s: Served, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    out = probe(s, "--json", *args, env=env)
    return out.returncode, json.loads(out.stdout)


def still_serves(s: Served) -> None:
    rc, doc = probe_json(s, "--sec", "sys", "--uid", "0", "--gid", "0", f"127.0.0.1:{s.port}", "/public")
    assert rc == 0 and doc["outcome"] == "ok", doc
    assert "readme.txt" in [e["name"] for e in doc["entries"]]


def test_sys_probe_lists_with_owner_names_and_writes(served: Served) -> None:
    (served.public / "by-alice").write_text("x")
    os.chown(served.public / "by-alice", ALICE_UID, ALICE_UID)
    out = probe(served, "--sec", "sys", "--uid", "0", "--gid", "0", f"127.0.0.1:{served.port}", "/public", "--write")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "security    sys" in out.stdout
    assert "export      /public allows sys (SECINFO_NO_NAME)" in out.stdout
    domain = served.realm.realm.lower()
    # RFC 8881 §5.9: owner strings are user@dns_domain; uid 5001 is alice in the static map.
    line = next(ln for ln in out.stdout.splitlines() if ln.endswith(" by-alice"))
    assert f"alice@{domain}" in line and line.lstrip().startswith("-rw-")
    assert "read back identical" in out.stdout and ", removed" in out.stdout
    assert not [p for p in served.public.iterdir() if p.name.startswith(".securenfs-probe")]
    assert out.stdout.rstrip().endswith("result      OK")


def test_krb5p_probe_as_alice_lists_writes_and_is_mapped(served: Served) -> None:
    rc, doc = probe_json(served, "--sec", "krb5p", "--ccache", str(served.ccache),
                         "--principal", f"nfs@{served.realm.hostname}", f"127.0.0.1:{served.port}",
                         "/secure/alice", "--write")
    assert rc == 0, doc
    assert doc["identity"] == f"alice@{served.realm.realm}" and doc["sec"] == "krb5p"
    assert doc["export_flavors"] == ["krb5p"]
    domain = served.realm.realm.lower()
    notes = next(e for e in doc["entries"] if e["name"] == "notes.txt")
    assert notes["owner"] == f"alice@{domain}" and notes["type"] == "reg" and notes["size"] == 8
    w = doc["write"]
    assert w["identical"] and w["removed"] and w["written"] == w["read_back"]
    # The file was created as alice: the server mapped the principal to uid 5001.
    assert w["owner"] == f"alice@{domain}"


def test_not_listening(served: Served) -> None:
    port = _free_port()
    rc, doc = probe_json(served, "--sec", "sys", f"127.0.0.1:{port}", "/public")
    assert rc == Outcome.UNREACHABLE == 3
    f = doc["failure"]
    assert f["step"] == "connect" and f["error"] == f"connection to 127.0.0.1:{port} refused"
    assert "no server is listening" in f["cause"] and "securenfs serve" in f["fix"]
    still_serves(served)


def test_wrong_sec_names_the_flavors_the_export_allows(served: Served) -> None:
    out = probe(served, "--sec", "sys", "--uid", "0", "--gid", "0", f"127.0.0.1:{served.port}", "/secure")
    assert out.returncode == Outcome.WRONGSEC == 5, out.stdout
    assert "FAILED at mount: LOOKUP: NFS4ERR_WRONGSEC" in out.stdout
    assert "likely cause: /secure does not allow sys; the export allows krb5p" in out.stdout
    assert "fix: rerun with --sec krb5p" in out.stdout
    # ... and the other way round: krb5p on a sys-only export.
    rc, doc = probe_json(served, "--sec", "krb5p", "--ccache", str(served.ccache), f"127.0.0.1:{served.port}",
                         "/public", "--principal", f"nfs@{served.realm.hostname}")
    assert rc == 5 and doc["failure"]["cause"] == "/public does not allow krb5p; the export allows sys"
    still_serves(served)


def test_no_ticket(served: Served, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ccache"
    rc, doc = probe_json(served, "--sec", "krb5p", "--ccache", str(missing), f"127.0.0.1:{served.port}",
                         "/secure", "--principal", f"nfs@{served.realm.hostname}")
    assert rc == Outcome.AUTH == 4, doc
    f = doc["failure"]
    assert f["step"] == "credentials" and str(missing) in f["error"]
    assert f["cause"] == "no ticket" and "kinit" in f["fix"]
    still_serves(served)


def test_expired_ticket(served: Served, tmp_path: Path) -> None:
    realm = served.realm
    ccache = tmp_path / "short.ccache"
    env = dict(realm.env, KRB5CCNAME=f"FILE:{ccache}")
    realm.k5.run(["kinit", "-l", "2s", realm.principal("alice")], input=realm.k5.password("alice") + "\n",
                 env=env)
    for _ in range(100):  # bounded: wait until klist itself says the ticket is gone
        if subprocess.run(["klist", "-s", "-c", str(ccache)], env=env).returncode != 0:
            break
        time.sleep(0.1)
    rc, doc = probe_json(served, "--sec", "krb5p", "--ccache", str(ccache), f"127.0.0.1:{served.port}",
                         "/secure", "--principal", f"nfs@{realm.hostname}")
    assert rc == 4, doc
    f = doc["failure"]
    assert f["step"] == "credentials" and f["cause"] == "ticket expired" and "kinit" in f["fix"]
    assert str(ccache) in f["error"]
    still_serves(served)


def test_service_principal_missing_from_the_kdc(served: Served) -> None:
    rc, doc = probe_json(served, "--sec", "krb5p", "--ccache", str(served.ccache), f"127.0.0.1:{served.port}",
                         "/secure", "--principal", f"nfs/nowhere.invalid@{served.realm.realm}")
    assert rc == 4, doc
    f = doc["failure"]
    assert f["step"] == "gss-context" and "not found in Kerberos database" in f["error"]
    assert f["cause"] == "missing principal"
    assert f"nfs/nowhere.invalid@{served.realm.realm}" in f["fix"] and "addprinc" in f["fix"]
    still_serves(served)


@pytest.mark.parametrize("sec,op", [("sys", "LOOKUP"), ("auto", "SECINFO")])
def test_path_not_exported(served: Served, sec: str, op: str) -> None:
    out = probe(served, "--sec", sec, "--ccache", str(served.ccache), f"127.0.0.1:{served.port}", "/nope",
                "--principal", f"nfs@{served.realm.hostname}")
    assert out.returncode == Outcome.NOT_EXPORTED == 6, out.stdout
    assert f"FAILED at mount: {op}: NFS4ERR_NOENT" in out.stdout
    assert "likely cause: /nope is not exported" in out.stdout
    still_serves(served)


def test_permission_denied_on_write(served: Served) -> None:
    rc, doc = probe_json(served, "--sec", "sys", "--uid", "1000", "--gid", "1000", f"127.0.0.1:{served.port}",
                         "/public", "--write")
    assert rc == Outcome.WRITE == 7, doc
    f = doc["failure"]
    assert f["step"] == "write: create" and f["error"].startswith("OPEN: NFS4ERR_ACCESS (permission denied")
    assert "may not write in /public" in f["cause"] and "uid 1000 gid 1000" in f["cause"]
    assert "readme.txt" in [e["name"] for e in doc["entries"]]  # the listing before it worked
    still_serves(served)


def test_bad_server_argument_is_a_usage_error(served: Served) -> None:
    out = probe(served, "127.0.0.1:notaport")
    assert out.returncode == 2
    assert "'127.0.0.1:notaport': expected HOST[:PORT] or [ADDRESS]:PORT" in out.stderr
    still_serves(served)


def test_server_without_kerberos(served: Served, tmp_path: Path) -> None:
    """A server with no keytab serves no RPCSEC_GSS at all: the context is refused at the RPC
    layer (RFC 2203 §5.3.3.3), and the probe says where to look on the server."""
    from tests.support.nfsserver import ProcessServer

    srv = ProcessServer(tmp_path)
    port = srv.start()
    try:
        rc, doc = probe_json(served, "--sec", "krb5p", "--ccache", str(served.ccache), f"127.0.0.1:{port}",
                             "/share", "--principal", f"nfs@{served.realm.hostname}")
        assert rc == Outcome.AUTH, doc
        f = doc["failure"]
        assert f["step"] == "gss-context" and f["error"].startswith("RPC authentication error AUTH_BADCRED (")
        assert f["cause"] == "the server does not serve Kerberos right now" and "securenfs status" in f["fix"]
        rc, doc = probe_json(served, "--sec", "sys", f"127.0.0.1:{port}", "/share")
        assert rc == 0, doc
        # Negotiating, the probe falls back to AUTH_SYS, which this export allows.
        rc, doc = probe_json(served, "--ccache", str(served.ccache), f"127.0.0.1:{port}", "/share",
                             "--principal", f"nfs@{served.realm.hostname}")
        assert rc == 0 and doc["sec"] == "sys" and doc["negotiated"], doc
    finally:
        srv.kill()


def test_server_refuses_the_context_for_a_principal_it_has_no_key_for(served: Served) -> None:
    """The KDC knows the principal, the server's keytab does not: the server's own GSS
    translation comes back in the context reply (RFC 2203 §5.2.3.1 gss_major/gss_minor)."""
    principal = served.realm.add_principal("nfs/alias.invalid")
    rc, doc = probe_json(served, "--sec", "krb5p", "--ccache", str(served.ccache), f"127.0.0.1:{served.port}",
                         "/secure", "--principal", principal)
    assert rc == Outcome.AUTH, doc
    f = doc["failure"]
    assert f["step"] == "gss-context" and f["error"].startswith("the server refused the GSS context: GSS ")
    assert f["cause"] == "missing principal" and f["fix"].startswith("on the server: "), f
    still_serves(served)


def test_krb5i_is_refused_by_a_krb5p_only_export(served: Served) -> None:
    rc, doc = probe_json(served, "--sec", "krb5i", "--ccache", str(served.ccache), f"127.0.0.1:{served.port}",
                         "/secure", "--principal", f"nfs@{served.realm.hostname}")
    assert rc == Outcome.WRONGSEC, doc
    assert doc["failure"]["cause"] == "/secure does not allow krb5i; the export allows krb5p"
    assert doc["failure"]["fix"].startswith("rerun with --sec krb5p")


@pytest.mark.parametrize("path,ticket,expected", [
    ("/secure/alice", True, "krb5p"),  # the export's only flavor; alice has a ticket
    ("/public", True, "sys"),  # a ticket does not help where only AUTH_SYS is allowed
    ("/public", False, "sys"),
])
def test_auto_negotiates_the_flavor(served: Served, tmp_path: Path, path: str, ticket: bool, expected: str) -> None:
    """Without --sec the probe does what a mount without sec= does: it follows SECINFO
    (RFC 8881 §2.6.3.1.1.5) to the first flavor of the export's list it can use."""
    ccache = served.ccache if ticket else tmp_path / "none"
    rc, doc = probe_json(served, "--ccache", str(ccache), "--uid", "0", "--gid", "0", f"127.0.0.1:{served.port}", path,
                         "--principal", f"nfs@{served.realm.hostname}")
    assert rc == 0, doc
    assert doc["sec"] == expected and doc["negotiated"] and doc["sec_requested"] == "auto"
    assert doc["identity"] == (f"alice@{served.realm.realm}" if expected == "krb5p" else "uid 0 gid 0 (AUTH_SYS)")
    assert doc["entries"]


def test_auto_without_a_ticket_on_a_kerberos_export_says_why(served: Served, tmp_path: Path) -> None:
    out = probe(served, "--ccache", str(tmp_path / "none"), f"127.0.0.1:{served.port}", "/secure",
                "--principal", f"nfs@{served.realm.hostname}")
    assert out.returncode == Outcome.AUTH, out.stdout
    assert "FAILED at credentials: GSS no credentials: No credentials cache found" in out.stdout
    assert "likely cause: /secure allows krb5p, and Kerberos failed here: no ticket" in out.stdout
    assert "kinit" in out.stdout
    still_serves(served)


@contextlib.contextmanager
def captured(port: int, tmp_path: Path) -> Iterator[Path]:
    """A tshark capture of the loopback traffic to ``port`` while the block runs."""
    pcap = tmp_path / "probe.pcap"
    ts = subprocess.Popen(["tshark", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert ts.stderr is not None
    for line in ts.stderr:  # bounded by tshark's own start-up output
        if "Capturing on" in line:
            break
    try:
        yield pcap
    finally:
        time.sleep(0.3)  # let the last segments reach the capture
        ts.send_signal(signal.SIGINT)
        ts.wait(30)


def calls(pcap: Path, port: int, *fields: str) -> list[list[str]]:
    """The RPC calls in ``pcap`` as Wireshark decodes them, one list of ``fields`` each."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},rpc", "-Y", "rpc.msgtyp == 0",
                          "-T", "fields", *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in out.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None or os.geteuid() != 0,
                    reason="capturing with tshark needs it installed and root")
def test_the_wire_shows_the_flavor_the_probe_reports(served: Served, tmp_path: Path) -> None:
    """Wireshark, not our decoder: under krb5p every call after the context set-up is an
    RPCSEC_GSS DATA call with service privacy (RFC 2203 §5.3.1: rpc_gss_svc_privacy = 3), so
    no NFS operation is readable; under sys the calls carry AUTH_SYS with the uid given."""
    with captured(served.port, tmp_path) as pcap:
        rc, doc = probe_json(served, "--ccache", str(served.ccache), f"127.0.0.1:{served.port}", "/secure/alice",
                             "--write", "--principal", f"nfs@{served.realm.hostname}")
    assert rc == 0 and doc["sec"] == "krb5p", doc
    seen = calls(pcap, served.port, "rpc.auth.flavor", "rpc.authgss.procedure", "rpc.authgss.service", "nfs.opcode")
    gss_data = [c for c in seen if c[0].startswith("6") and c[1] == "0"]
    assert [c for c in seen if c[1] == "1"], seen  # RPCSEC_GSS_INIT
    # The session and the SECINFO walk run under integrity (service 2, readable), the rest
    # under privacy.
    private = [c for c in gss_data if c[2] == "3"]
    assert len(private) >= 8 and all(not c[3] for c in private), seen
    assert all(c[2] in ("2", "3") for c in gss_data), seen
    assert any("33" in c[3].split(",") for c in gss_data if c[2] == "2"), seen  # SECINFO (op 33) in the clear

    with captured(served.port, tmp_path) as pcap:
        rc, doc = probe_json(served, "--sec", "sys", "--uid", "4242", "--gid", "4243", f"127.0.0.1:{served.port}",
                             "/public")
    assert rc == 0, doc
    seen = calls(pcap, served.port, "rpc.auth.flavor", "rpc.auth.uid", "rpc.auth.gid")
    assert seen and all(c[0].startswith("1") and c[1] == "4242" and c[2] == "4243" for c in seen), seen
