"""The start-up gate and `securenfs status` against the real server process and a real KDC."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from securenfs.client.gss import GssClientError
from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.client.rpc import AuthSys, RpcError
from tests.support.forwarder import Forwarder
from tests.support.kdc import KdcRealm
from tests.support.ports import free_port
from tests.support.serveproc import (
    krb5p_client,
    reload,
    serve_process,
    served,
    status,
    stop,
    wait_gate,
    wait_ready,
    wait_served,
)


def serve(tmp_path: Path, realm: KdcRealm, keytab: Path, *extra: str,
          krb5_conf: Path | None = None) -> subprocess.Popen[str]:
    """The server with a krb5p export /secure and a sys export /public."""
    krb = tmp_path / "krb"
    pub = tmp_path / "pub"
    krb.mkdir(exist_ok=True)
    pub.mkdir(exist_ok=True)
    return serve_process(tmp_path, realm, keytab, "--export", f"{krb}:/secure:sec=krb5p",
                         "--export", f"{pub}:/public:sec=sys", *extra, krb5_conf=krb5_conf)


async def krb5p_mount(port: int, realm: KdcRealm, path: str) -> bytes:
    client = await krb5p_client(port, realm)
    try:
        return await client.mount(path)
    finally:
        await client.close()


async def sys_read(port: int, path: str) -> bytes:
    client = await Nfs4Client.connect("127.0.0.1", port, AuthSys(uid=0, gid=0))
    try:
        await client.establish()
        fh = await client.lookup_path(path)
        return bytes((await client.read(fh, 0, 100)).data)
    finally:
        await client.close()


@pytest.fixture
def bad_keytab(kdc_realm: KdcRealm, tmp_path: Path) -> Path:
    """A keytab that exists but holds no nfs/ principal."""
    name = "someone-" + tmp_path.name[-12:].replace("_", "-")
    kdc_realm.add_principal(name)
    return kdc_realm.extract_keytab(name, tmp_path / "wrong.keytab")


def test_good_keytab_serves_both_and_status_shows_them(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    proc = serve(tmp_path, kdc_realm, kdc_realm.service_keytab)
    try:
        wait_ready(proc, tmp_path / "ready")
        doc = wait_gate(tmp_path)
        exports = {e["pseudo"]: e for e in doc["exports"]}
        assert exports["/secure"]["enabled"] and exports["/secure"]["flavors"] == ["krb5p"]
        assert exports["/public"]["enabled"]
        assert doc["server"]["boot_epoch"] >= 1
        human = status(tmp_path)
        assert "[on ] /secure" in human.stdout and "[on ] /public" in human.stdout
        port = int((tmp_path / "ready").read_text().split()[1])
        assert asyncio.run(krb5p_mount(port, kdc_realm, "/secure"))  # the krb5p export really serves
    finally:
        stop(proc)


def test_broken_keytab_switches_krb5p_export_off_sys_serves(kdc_realm: KdcRealm, tmp_path: Path,
                                                             bad_keytab: Path) -> None:
    proc = serve(tmp_path, kdc_realm, bad_keytab)
    try:
        wait_ready(proc, tmp_path / "ready")
        doc = wait_gate(tmp_path)
        exports = {e["pseudo"]: e for e in doc["exports"]}
        assert exports["/public"]["enabled"] is True
        assert exports["/secure"]["enabled"] is False
        reasons = " ".join(exports["/secure"]["disabled_because"])
        assert "KT-002" in reasons and "fix:" in reasons
        assert "[OFF] /secure" in status(tmp_path).stdout
    finally:
        err = stop(proc)
    assert "export /secure (krb5p) is switched off because" in err
    assert "KT-002" in err


@pytest.mark.parametrize("mode", ["--no-preflight", "--strict"])
def test_krb5p_serves_from_the_first_call(kdc_realm: KdcRealm, tmp_path: Path, mode: str) -> None:
    """Without the preflight, or after a strict one that passed before listening, RPCSEC_GSS
    is served from the first call, and `securenfs status` shows the flavors the live policy
    serves.  (The background gate is test_good_keytab_serves_both_and_status_shows_them.)"""
    proc = serve(tmp_path, kdc_realm, kdc_realm.service_keytab, mode)
    try:
        wait_ready(proc, tmp_path / "ready")
        port = int((tmp_path / "ready").read_text().split()[1])
        assert asyncio.run(krb5p_mount(port, kdc_realm, "/secure"))
        assert served(tmp_path) == {"/secure": ["krb5p"], "/public": ["sys"]}
        assert "[on ] /secure" in status(tmp_path).stdout
    finally:
        err = stop(proc)
    assert "not supported" not in err


def test_kerberos_call_held_back_by_the_gate_is_logged_with_the_check(kdc_realm: KdcRealm, tmp_path: Path,
                                                                       bad_keytab: Path) -> None:
    proc = serve(tmp_path, kdc_realm, bad_keytab)
    try:
        wait_ready(proc, tmp_path / "ready")
        wait_gate(tmp_path)
        port = int((tmp_path / "ready").read_text().split()[1])
        with pytest.raises(RpcError, match="AUTH_BADCRED|authentication error 1"):
            asyncio.run(krb5p_mount(port, kdc_realm, "/secure"))
        assert served(tmp_path)["/secure"] == []
        (tmp_path / "pub" / "hello").write_text("still serving")
        assert asyncio.run(sys_read(port, "/public/hello")) == b"still serving"
    finally:
        err = stop(proc)
    refused = [line for line in err.splitlines() if "refused:" in line]
    assert refused, err
    assert "held back because the preflight failed: KT-002" in refused[0] and "fix:" in refused[0]
    assert "flavor 6 is not supported" not in err


def test_strict_refuses_to_start_with_the_remedy(kdc_realm: KdcRealm, tmp_path: Path, bad_keytab: Path) -> None:
    proc = serve(tmp_path, kdc_realm, bad_keytab, "--strict")
    rc = proc.wait(60)
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == 2
    assert "KT-002" in err and "fix:" in err and "refusing to start" in err
    assert not (tmp_path / "ready").exists()


def test_status_without_server_is_clear(tmp_path: Path) -> None:
    out = status(tmp_path)
    assert out.returncode == 3 and "no server answers" in out.stderr


def test_sys_export_serves_while_the_preflight_is_still_running(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    """An NTP server that never answers keeps the preflight busy for its timeout; the
    AUTH_SYS export serves meanwhile, and Kerberos comes on once the checks are done."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    conf = tmp_path / "securenfs.toml"
    conf.write_text(f"""[preflight]\nntp_servers = ["127.0.0.1:{silent.getsockname()[1]}"]\ntimeout = 4\n""")
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "hello").write_text("public data")
    proc = serve(tmp_path, kdc_realm, kdc_realm.service_keytab, "--config", str(conf))
    try:
        wait_ready(proc, tmp_path / "ready")
        port = int((tmp_path / "ready").read_text().split()[1])
        assert asyncio.run(sys_read(port, "/public/hello")) == b"public data"
        doc = json.loads(status(tmp_path, "--json").stdout)
        assert doc["preflight"]["state"] == "running", "the sys read above did not wait for the preflight"
        secure = {e["pseudo"]: e for e in doc["exports"]}["/secure"]
        assert secure["flavors"] == [] and "preflight still running" in secure["disabled_because"][0]
        doc = wait_gate(tmp_path)
        assert {e["pseudo"]: e for e in doc["exports"]}["/secure"]["flavors"] == ["krb5p"]
    finally:
        stop(proc)
        silent.close()


# -- the live gate: re-runs every preflight.interval seconds, on SIGHUP and `securenfs reload` --

@pytest.fixture
def kdc_link(kdc_realm: KdcRealm, tmp_path: Path) -> Iterator[tuple[Forwarder, Path]]:
    """A krb5.conf for the server alone whose KDC is reached through a forwarder the test
    switches on and off (the KDC keeps serving the test's own client throughout)."""
    text = kdc_realm.krb5_conf.read_text()
    kdc = re.search(r"kdc = ([^:\s]+):(\d+)", text)
    assert kdc is not None, text
    fwd = Forwarder(free_port(), ("127.0.0.1", int(kdc.group(2))))
    conf = tmp_path / "krb5.conf"
    conf.write_text(text.replace(kdc.group(0), f"kdc = 127.0.0.1:{fwd.port}"))
    try:
        yield fwd, conf
    finally:
        fwd.stop()


def gate_config(tmp_path: Path, interval: int, extra: str = "") -> Path:
    conf = tmp_path / "securenfs.toml"
    conf.write_text(f"[preflight]\ninterval = {interval}\ntimeout = 3\n{extra}")
    return conf


def test_kdc_down_at_start_then_up_turns_krb5p_on_within_the_period(kdc_realm: KdcRealm, tmp_path: Path,
                                                                     kdc_link: tuple[Forwarder, Path]) -> None:
    fwd, krb5_conf = kdc_link
    proc = serve(tmp_path, kdc_realm, kdc_realm.service_keytab, "--config", str(gate_config(tmp_path, 2)),
                 krb5_conf=krb5_conf)
    try:
        wait_ready(proc, tmp_path / "ready")
        doc = wait_gate(tmp_path)
        assert {e["pseudo"]: e["flavors"] for e in doc["exports"]}["/secure"] == []
        assert doc["preflight"]["checks"]["KDC-001"]["status"] in ("ERROR", "CRITICAL")
        assert doc["preflight"]["kerberos"] == "off"
        fwd.start()  # the KDC becomes reachable: the next periodic run turns krb5p on
        doc = wait_served(tmp_path, "/secure", ["krb5p"])
        assert doc["preflight"]["checks"]["KDC-001"]["status"] == "OK"
        port = int((tmp_path / "ready").read_text().split()[1])
        assert asyncio.run(krb5p_mount(port, kdc_realm, "/secure"))
        human = status(tmp_path).stdout
        assert "KDC-001" in human and "Kerberos on" in human
    finally:
        err = stop(proc)
    assert "export /secure serves all its flavors again" in err


def test_kdc_down_after_start_keeps_krb5p_on(kdc_realm: KdcRealm, tmp_path: Path,
                                              kdc_link: tuple[Forwarder, Path]) -> None:
    """Once Kerberos has served, a KDC outage is reported but switches nothing off: the
    acceptor needs only its keytab."""
    fwd, krb5_conf = kdc_link
    fwd.start()
    # A probe user nobody has: IDM-003 fails, which gates nothing but is logged at start.
    conf = gate_config(tmp_path, 0, 'probe_user = "no-such-user-anywhere"\n')
    proc = serve(tmp_path, kdc_realm, kdc_realm.service_keytab, "--config", str(conf), krb5_conf=krb5_conf)
    try:
        wait_ready(proc, tmp_path / "ready")
        wait_served(tmp_path, "/secure", ["krb5p"])
        fwd.stop()
        out = reload(tmp_path)
        assert out.returncode == 0, out.stderr
        doc = json.loads(status(tmp_path, "--json").stdout)
        assert doc["preflight"]["checks"]["KDC-001"]["status"] in ("ERROR", "CRITICAL")
        assert {e["pseudo"]: e["flavors"] for e in doc["exports"]}["/secure"] == ["krb5p"]
        port = int((tmp_path / "ready").read_text().split()[1])
        assert asyncio.run(krb5p_mount(port, kdc_realm, "/secure"))
    finally:
        err = stop(proc)
    assert "preflight KDC-001" in err  # reported and logged
    assert "switched off" not in err
    assert "preflight IDM-003 probe user no-such-user-anywhere" in err


def test_keytab_key_removed_switches_krb5p_off_and_back_on(kdc_realm: KdcRealm, tmp_path: Path,
                                                           bad_keytab: Path) -> None:
    keytab = tmp_path / "server.keytab"
    keytab.write_bytes(kdc_realm.service_keytab.read_bytes())
    proc = serve(tmp_path, kdc_realm, keytab, "--config", str(gate_config(tmp_path, 0)))
    try:
        wait_ready(proc, tmp_path / "ready")
        wait_served(tmp_path, "/secure", ["krb5p"])
        port = int((tmp_path / "ready").read_text().split()[1])
        keytab.write_bytes(bad_keytab.read_bytes())  # the nfs/ key is gone
        proc.send_signal(signal.SIGHUP)
        doc = wait_served(tmp_path, "/secure", [])
        assert doc["preflight"]["checks"]["KT-002"]["status"] in ("ERROR", "CRITICAL")
        assert doc["preflight"]["kerberos"] == "off"
        secure = {e["pseudo"]: e for e in doc["exports"]}["/secure"]
        assert any("KT-002" in r for r in secure["disabled_because"])
        with pytest.raises((RpcError, Nfs4Error, GssClientError)):
            asyncio.run(krb5p_mount(port, kdc_realm, "/secure"))
        (tmp_path / "pub" / "hello").write_text("sys still serves")
        assert asyncio.run(sys_read(port, "/public/hello")) == b"sys still serves"
        keytab.write_bytes(kdc_realm.service_keytab.read_bytes())  # fixed: the next run brings it back
        assert reload(tmp_path).returncode == 0
        wait_served(tmp_path, "/secure", ["krb5p"], limit=5)
        assert asyncio.run(krb5p_mount(port, kdc_realm, "/secure"))
    finally:
        err = stop(proc)
    assert "export /secure (krb5p) is switched off because" in err


def test_reload_without_a_server_is_clear(tmp_path: Path) -> None:
    out = reload(tmp_path)
    assert out.returncode == 3 and "no server answers" in out.stderr
    alias = subprocess.run([sys.executable, "-m", "securenfs", "preflight", "--reload", "--state-dir",
                            str(tmp_path / "state")], capture_output=True, text=True, timeout=60)
    assert alias.returncode == 3 and "securenfs reload: no server answers" in alias.stderr
