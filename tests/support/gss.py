"""RPCSEC_GSS test support: the real server in-process on loopback, with an echo program.

``GssServer`` runs :class:`securenfs.server.Server` on its own event loop in a background
thread (127.0.0.1, port 0).  A small test-only program (``ECHO_PROG``) returns its
arguments (proc 1) or the caller's identity as the server saw it (proc 2), so integrity and
privacy are proven on real bodies in both directions.

``kerberos.fast_path`` (the OpenSSL per-message path) follows ``SECURENFS_TEST_FAST_PATH``
(``1``, the default, or ``0``) unless a test passes it explicitly: :func:`test_fast_path`
reads it, :func:`apply_test_fast_path` sets it on any Config, so other suites' fixtures can
run under either path with one environment variable.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from securenfs.config import Config, ExportConfig, ListenAddress
from securenfs.rpc.auth import Authenticated, Buffers
from securenfs.rpc.constants import AuthFlavor
from securenfs.rpc.message import RpcCall
from securenfs.rpc.peerlog import PeerLog
from securenfs.rpc.transport import ProcUnavail
from securenfs.rpcsec_gss.handler import RpcsecGssHandler
from securenfs.server import Server

T = TypeVar("T")

#: A program number in the "defined by user" range (RFC 5531 §8.3).
ECHO_PROG = 0x20051203
ECHO_VERS = 1
PROC_ECHO = 1
PROC_WHOAMI = 2


class EchoProgram:
    prog = ECHO_PROG
    low_version = ECHO_VERS
    high_version = ECHO_VERS

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, call: RpcCall, auth: Authenticated) -> Buffers:
        self.calls += 1
        if call.proc == PROC_ECHO:
            return [bytes(auth.args)]
        if call.proc == PROC_WHOAMI:
            c = auth.cred
            text = f"{c.principal} {c.pseudo_flavor} {c.gss_service}".encode()
            return [text + b"\0" * (-len(text) & 3)]
        raise ProcUnavail(call.proc)


#: Environment variable choosing kerberos.fast_path for test servers: "1" (default) or "0".
FAST_PATH_ENV = "SECURENFS_TEST_FAST_PATH"


def test_fast_path() -> bool:
    """kerberos.fast_path for test servers, from ``SECURENFS_TEST_FAST_PATH`` (default on)."""
    value = os.environ.get(FAST_PATH_ENV, "1").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{FAST_PATH_ENV}={value!r}: use 1 or 0")


test_fast_path.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def apply_test_fast_path(cfg: Config, fast_path: bool | None = None) -> Config:
    """Set ``cfg.kerberos.fast_path`` to ``fast_path``, or to :func:`test_fast_path`."""
    cfg.kerberos.fast_path = test_fast_path() if fast_path is None else fast_path
    return cfg


def gss_config(tmp: Path, keytab: Path, hostname: str, principals: list[str] | None = None,
               fast_path: bool | None = None) -> Config:
    cfg = Config()
    apply_test_fast_path(cfg, fast_path)
    cfg.server.listen = [ListenAddress("127.0.0.1", 0)]
    cfg.server.state_dir = tmp / "state"
    cfg.server.hostname = hostname
    cfg.server.threads = 4
    cfg.kerberos.keytab = keytab
    cfg.kerberos.principals = list(principals or [])
    export_dir = tmp / "export"
    export_dir.mkdir(parents=True, exist_ok=True)
    cfg.exports = [ExportConfig(path=export_dir, pseudo="/data", sec=["krb5p", "krb5i", "krb5"])]
    return cfg


class GssServer:
    """The server on a background loop; ``port``, ``handler`` and ``echo`` for tests."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gss-test-server", daemon=True)
        self.thread.start()
        self.server = Server(cfg)
        # One module's tests share this server and all come from 127.0.0.1; tests here check
        # single log lines, so the per-peer log budget must not run dry between them.
        self.server.rpc.peerlog = PeerLog(burst=1_000_000)
        self.echo = EchoProgram()
        self.server.rpc.add_program(self.echo)
        try:
            self.run(self.server.start())
        except BaseException:
            self.close()
            raise
        self.host, self.port = self.server.bound[0]

    @property
    def handler(self) -> RpcsecGssHandler:
        h = self.server.rpc.flavors.get(AuthFlavor.RPCSEC_GSS)
        assert isinstance(h, RpcsecGssHandler)
        return h

    def replace_handler(self, handler: RpcsecGssHandler) -> None:
        async def swap() -> None:
            old = self.server.gss
            if old is not None:
                await old.stop()
            handler.start()
            self.server.gss = handler
            self.server.rpc.set_flavor(AuthFlavor.RPCSEC_GSS, handler)

        self.run(swap())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def call_soon(self, fn: Any, *args: Any) -> Any:
        async def go() -> Any:
            return fn(*args)

        return self.run(go())

    def close(self) -> None:
        if self.loop.is_running():
            try:
                if self.server.bound:
                    self.run(self.server.stop(), timeout=15)
                else:
                    self.server.executor.shutdown(wait=False)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module", params=[True, False], ids=["fast_path-on", "fast_path-off"], name="server")
def gss_server(request: pytest.FixtureRequest, kdc_realm: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[GssServer]:
    """The GSS test server with kerberos.fast_path on and off: every test using it runs under
    both.  Import it into a test module that also imports ``kdc_realm``."""
    tmp = tmp_path_factory.mktemp("gss-server")
    srv = GssServer(gss_config(tmp, kdc_realm.service_keytab, kdc_realm.hostname, fast_path=request.param))
    yield srv
    srv.close()


def context_pair(ccache: str, keytab: str | Path, target: str, *, hostbased: bool = True,
                 mutual: bool = True, extra_flags: int = 0) -> tuple[Any, Any]:
    """An established (initiator, acceptor) pair of MIT GSS-API contexts, the tokens handed
    back and forth in memory (RFC 2743 §2.2.1).  ``target`` is ``service@host`` when
    ``hostbased``, else a full principal.  Flags: integrity and confidentiality, mutual
    authentication unless ``mutual`` is False, plus ``extra_flags``; no replay or sequence
    detection, as RPCSEC_GSS keeps its own window (RFC 2203 §5.3.3.1)."""
    import gssapi

    icred = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
    acred = gssapi.Credentials(usage="accept", store={"keytab": str(keytab)})
    flags = int(gssapi.RequirementFlag.integrity) | int(gssapi.RequirementFlag.confidentiality) | extra_flags
    if mutual:
        flags |= int(gssapi.RequirementFlag.mutual_authentication)
    kind = gssapi.NameType.hostbased_service if hostbased else gssapi.NameType.kerberos_principal
    init = gssapi.SecurityContext(name=gssapi.Name(target, kind), creds=icred, usage="initiate", flags=flags)
    acc = gssapi.SecurityContext(creds=acred, usage="accept")
    token = init.step()
    while not (init.complete and acc.complete):
        token = acc.step(token)
        if token and not init.complete:
            token = init.step(token)
    return init, acc
