"""The real securenfs server on a background thread and loop, on 127.0.0.1 (port 0).

``NfsServer(tmp, exports)`` with ``exports`` as (pseudo path, sec list[, client rules]); export
directories are created under ``tmp``.  ``restart()`` starts a new server process state with the
same state directory (the handle key survives, so file handles do too).

``kerberos.fast_path`` (the OpenSSL per-message path for krb5i/krb5p) follows
``SECURENFS_TEST_FAST_PATH`` (``1`` default, ``0``) unless ``fast_path=`` is given, so every
NFS suite that uses Kerberos can be run under either engine (tests/support/gss.py).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from securenfs.config import ClientRule, Config, ExportConfig, ListenAddress
from securenfs.server import Server, new_event_loop
from tests.support.gss import apply_test_fast_path

T = TypeVar("T")


class NfsServer:
    #: Set for the session by the suite's wire recorder (tests/support/wirecheck.py): servers
    #: then listen on its band so their traffic is captured and decoded by Wireshark.
    recorder: Any = None

    def __init__(self, tmp: Path, exports: list[tuple[Any, ...]], *, kdc: Any = None, lease_time: int = 90,
                 fast_path: bool | None = None, resolver: Any = None):
        self.tmp = tmp
        self.resolver = resolver
        cfg = Config()
        apply_test_fast_path(cfg, fast_path)
        cfg.server.listen = [ListenAddress("127.0.0.1", 0)]
        cfg.server.state_dir = tmp / "state"
        cfg.server.server_owner = "securenfs-test"
        cfg.server.server_scope = "securenfs-test-scope"
        cfg.server.threads = 4
        cfg.server.lease_time = lease_time
        if kdc is not None:
            cfg.server.hostname = kdc.hostname
            cfg.kerberos.keytab = kdc.service_keytab
        self.paths: dict[str, Path] = {}
        for ex in exports:
            pseudo, sec = ex[0], ex[1]
            rules = ex[2] if len(ex) > 2 else [ClientRule(squash="none")]
            d = tmp / ("export" + pseudo.replace("/", "_"))
            d.mkdir(parents=True, exist_ok=True)
            self.paths[pseudo] = d
            cfg.exports.append(ExportConfig(path=d, pseudo=pseudo, sec=list(sec), clients=list(rules)))
        self.cfg = cfg
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: Server | None = None

    def start(self) -> None:
        rec = NfsServer.recorder
        if rec is not None and self.cfg.server.listen[0].port == 0:
            self.cfg.server.listen = [ListenAddress("127.0.0.1", rec.take_port())]
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            server = Server(self.cfg, resolver=self.resolver)
            self.server = server
            try:
                loop.run_until_complete(server.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            self.port = server.bound[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(server.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="nfs-test-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop = None
        self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def on_server(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's loop (to inspect its state)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)


class RawArgs:
    """Operation arguments a test encodes itself (fields our client's encoder never sends)."""

    def __init__(self, data: bytes):
        self.data = data

    def pack(self, p: Any) -> None:
        p.raw(self.data)


@pytest.fixture
def nfs_server(tmp_path: Path) -> Iterator[NfsServer]:
    """Two sys exports (/a and /b/c) below a pseudo path."""
    srv = NfsServer(tmp_path, [("/a", ["sys"]), ("/b/c", ["sys"])])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def mounted_client(srv: NfsServer, path: str = "/a", **kw: Any) -> tuple[Any, bytes]:
    """A client of ``srv`` after the mount sequence, and the file handle of ``path``."""
    from securenfs.client.nfs4 import Nfs4Client

    c = await Nfs4Client.connect("127.0.0.1", srv.port, **kw)
    return c, await c.mount(path)


def run(coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
    """Run a client coroutine to its end in a new event loop, bounded by ``timeout`` seconds
    (a hung server fails the test instead of stalling the suite)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def status_of(coro: Coroutine[Any, Any, Any]) -> int:
    """The nfsstat4 a client call ended with (0 for success)."""
    from securenfs.client.nfs4 import Nfs4Error

    try:
        await coro
    except Nfs4Error as exc:
        return int(exc.status)
    return 0


async def flavor_client(srv: NfsServer, flavor: str, kdc: Any = None) -> Any:
    """A client of ``srv`` as root under AUTH_SYS (``sys``), or as the KDC's user alice under
    ``krb5``, ``krb5i`` or ``krb5p`` (with ``kdc``, the kdc_realm fixture)."""
    from securenfs.client.nfs4 import Nfs4Client
    from securenfs.client.rpc import AuthSys, RpcClient

    if flavor == "sys":
        return await Nfs4Client.connect("127.0.0.1", srv.port, AuthSys(uid=0, gid=0))
    from securenfs.client.gss import GssClientAuth
    from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
    from securenfs.rpcsec_gss.constants import GssService

    service = {"krb5": GssService.NONE, "krb5i": GssService.INTEGRITY, "krb5p": GssService.PRIVACY}[flavor]
    rpc = await RpcClient.connect("127.0.0.1", srv.port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache("alice")), service=service)
    return Nfs4Client(rpc, auth)


@pytest.fixture
def state_server(tmp_path: Path) -> Iterator[NfsServer]:
    """One sys export /a (squash none) for the state tests."""
    srv = NfsServer(tmp_path, [("/a", ["sys"])])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class ProcessServer:
    """``securenfs serve`` in its own process (for kill -9): one sys export /share (no squash)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.share = tmp / "share"
        self.share.mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> int:
        ready = self.tmp / "ready"
        ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0",
             "--state-dir", str(self.tmp / "state"), "--export", f"{self.share}:/share:sec=sys:no_root_squash",
             "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text().strip():
                self.port = int(ready.read_text().split()[1])
                return self.port
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"server exited early: {err}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, nothing flushed by the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
