"""``securenfs serve`` as its own process with a real KDC, and the admin commands that talk to
it (status, reload): for tests of the preflight gate and of reload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from securenfs.client.gss import GssClientAuth
from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import RpcClient
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.rpcsec_gss.constants import GssService
from tests.support.kdc import KdcRealm


def serve_process(tmp_path: Path, realm: KdcRealm, keytab: Path, *args: str,
                  krb5_conf: Path | None = None) -> subprocess.Popen[str]:
    """Start the server on a free loopback port; ``args`` add exports and options."""
    env = dict(os.environ, KRB5_CONFIG=str(krb5_conf or realm.krb5_conf), KRB5RCACHEDIR=str(realm.tmpdir))
    return subprocess.Popen(
        [sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0",
         "--state-dir", str(tmp_path / "state"), "--hostname", realm.hostname, "--keytab", str(keytab),
         "--ready-file", str(tmp_path / "ready"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_ready(proc: subprocess.Popen[str], ready: Path) -> int:
    """The port once the server listens."""
    deadline = time.monotonic() + 60
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("server did not start")
        time.sleep(0.05)
    return int(ready.read_text().split()[1])


def status(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "securenfs", "status", "--state-dir", str(tmp_path / "state"), *args],
                          capture_output=True, text=True, timeout=30)


def wait_gate(tmp_path: Path, limit: float = 60) -> dict[str, Any]:
    """The status document once the background preflight has finished."""
    deadline = time.monotonic() + limit
    while True:
        doc: dict[str, Any] = json.loads(status(tmp_path, "--json").stdout)
        if doc["preflight"]["state"] == "done":
            return doc
        assert time.monotonic() < deadline, "the preflight did not finish"
        time.sleep(0.1)


def served(tmp_path: Path) -> dict[str, list[str]]:
    doc = json.loads(status(tmp_path, "--json").stdout)
    return {e["pseudo"]: e["flavors"] for e in doc["exports"]}


def wait_served(tmp_path: Path, pseudo: str, want: list[str], limit: float = 60) -> dict[str, Any]:
    """Poll `securenfs status` until ``pseudo`` serves ``want`` (bounded)."""
    deadline = time.monotonic() + limit
    while True:
        doc: dict[str, Any] = json.loads(status(tmp_path, "--json").stdout)
        if doc["preflight"]["state"] == "done" and {e["pseudo"]: e["flavors"] for e in doc["exports"]}[pseudo] == want:
            return doc
        assert time.monotonic() < deadline, f"{pseudo} did not come to serve {want}: {doc['exports']}"
        time.sleep(0.2)


def reload(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "securenfs", "reload", "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=120)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return proc.stderr.read() if proc.stderr else ""


async def krb5p_client(port: int, realm: KdcRealm, user: str = "alice") -> Nfs4Client:
    """A client with an RPCSEC_GSS krb5p context (not yet EXCHANGE_ID)."""
    rpc = await RpcClient.connect("127.0.0.1", port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{realm.hostname}",
                                         ccache=str(realm.user_ccache(user)), service=GssService.PRIVACY)
    return Nfs4Client(rpc, auth)
