"""The OpenSSL fast path end to end: per-context choice, mixed client/server engines, status.

The server runs with kerberos.fast_path on and off; the client runs on the fast path here
(``tests/integration/test_gss_rpc.py`` runs the MIT client against both servers), so every
combination of engines meets on the wire.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import gssapi
import pytest

from securenfs.client.gss import GssClientAuth
from securenfs.client.rpc import RpcClient
from securenfs.rpc.constants import AcceptStat
from securenfs.rpcsec_gss.constants import GssService
from securenfs.rpcsec_gss.context import GssContext
from tests.support.gss import ECHO_PROG, ECHO_VERS, PROC_ECHO, GssServer, gss_config
from tests.support.gsscrypto import EnctypeRealm
from tests.support.kdc import KdcRealm

pytestmark = pytest.mark.timeout(120)

SERVICES = [GssService.NONE, GssService.INTEGRITY, GssService.PRIVACY]
# The shared realm's service keys (k5test's default): MIT picks the strongest.
REALM_ENCTYPE = "aes256-cts-hmac-sha1-96"


@pytest.fixture(scope="module")
def ccache(kdc_realm: KdcRealm) -> str:
    return str(kdc_realm.user_ccache("carol"))


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def server_context(srv: GssServer, auth: GssClientAuth) -> GssContext:
    ctx = srv.call_soon(srv.handler.table.get, auth.handle)
    assert isinstance(ctx, GssContext)
    return ctx


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name.lower())
def test_fast_client_against_both_servers(server: GssServer, kdc_realm: KdcRealm, ccache: str,
                                          service: GssService) -> None:
    fast_server = server.cfg.kerberos.fast_path

    async def go() -> None:
        c = await RpcClient.connect(server.host, server.port)
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}",
                                             ccache=ccache, service=service, fast_path=True)
        for body in (b"", os.urandom(3000), os.urandom(1 << 20)):
            assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, body, auth)) == body
        assert auth.protection == "openssl", auth.fast_path_reason
        # Calls arriving in reverse order still verify (no sequence checks in the tokens).
        bodies = [os.urandom(50 + i) for i in range(30)]
        built = [c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b, auth) for b in bodies]
        futs = []
        for xid, record, state in reversed(built):
            futs.append((c.expect(xid), state))
            c.send_raw(record)
        for (fut, state), body in zip(futs, reversed(bodies)):
            assert bytes(auth.unwrap_results(await asyncio.wait_for(fut, 10), state)) == body
        info = server_context(server, auth).describe()
        assert info["protection"] == ("openssl" if fast_server else "mit")
        assert info["enctype"] == REALM_ENCTYPE
        await auth.destroy(c, ECHO_PROG, ECHO_VERS)
        await c.close()

    run(go())


def test_fast_client_asking_for_sequence_detection(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    """The fast path's probe is a token the peer sees, so a strict peer finds no gap."""
    flags = [gssapi.RequirementFlag.replay_detection, gssapi.RequirementFlag.out_of_sequence_detection]

    async def go() -> None:
        c = await RpcClient.connect(server.host, server.port)
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}",
                                             ccache=ccache, service=GssService.PRIVACY, extra_flags=flags,
                                             fast_path=True)
        for i in range(5):
            assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"n%03d" % i, auth)) == b"n%03d" % i
        assert auth.protection == "openssl"
        await c.close()

    run(go())


def test_status_shows_engine_enctype_and_reason(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    fast_server = server.cfg.kerberos.fast_path
    before = server.call_soon(server.handler.stats)

    async def go() -> bytes:
        c = await RpcClient.connect(server.host, server.port)
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}",
                                             ccache=ccache, service=GssService.INTEGRITY)
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"stat", auth)) == b"stat"
        # A body whose checksum fails counts as a bad body.
        xid, record, _ = c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"x" * 64, auth)
        bad = bytearray(record)
        bad[-5] ^= 1
        reply = await c.call_raw(xid, bytes(bad))
        assert reply.accept_stat == AcceptStat.GARBAGE_ARGS
        await c.close()
        return auth.handle

    handle = run(go())
    summaries = {s["handle"]: s for s in server.call_soon(server.handler.contexts)}
    s = summaries[handle.hex()]  # type: ignore[attr-defined]
    assert s["enctype"] == REALM_ENCTYPE
    after = server.call_soon(server.handler.stats)
    p0, p1 = before["protection"], after["protection"]
    assert after["fast_path"] is fast_server
    assert p1["bad_bodies"] == p0["bad_bodies"] + 1
    if fast_server:
        assert s["protection"] == "openssl" and s["implementation"] == "openssl"
        assert s["fast_path_not_used_because"] is None
        assert p1["contexts_openssl"] == p0["contexts_openssl"] + 1
    else:
        assert s["protection"] == "mit" and s["implementation"] == "gssapi"
        assert s["fast_path_not_used_because"] == "kerberos.fast_path is off"
        assert p1["contexts_mit"] == p0["contexts_mit"] + 1
        assert p1["mit_reasons"]["kerberos.fast_path is off"] >= 1


def test_enctype_without_fast_path_keeps_mit(enctype_realm: EnctypeRealm, tmp_path: Path) -> None:
    """A camellia context: the server (fast path on) and the client both stay on MIT, and
    the status says why; krb5i and krb5p calls work."""
    service, keytab, _conf, ccache = enctype_realm.service_for(26)
    host = service.split("/", 1)[1].split("@", 1)[0]
    srv = GssServer(gss_config(tmp_path, keytab, host, principals=[service], fast_path=True))
    try:
        async def go() -> list[GssClientAuth]:
            c = await RpcClient.connect(srv.host, srv.port)
            auths = []
            for svc in (GssService.INTEGRITY, GssService.PRIVACY):
                with enctype_realm.client_env(26):
                    auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, service, ccache=f"FILE:{ccache}",
                                                         service=svc, fast_path=True)
                body = os.urandom(70000)
                assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, body, auth)) == body
                assert auth.protection == "mit" and "26" in auth.fast_path_reason
                auths.append(auth)
            await c.close()
            return auths

        auths = run(go())
        for auth in auths:  # type: ignore[attr-defined]
            s = server_context(srv, auth).describe()
            assert s["protection"] == "mit" and s["implementation"] == "gssapi"
            assert s["enctype"] == "camellia256-cts-cmac"
            assert "enctype 26" in s["fast_path_not_used_because"]
        stats = srv.call_soon(srv.handler.stats)["protection"]
        assert stats["contexts_mit"] == 2 and stats["contexts_openssl"] == 0
    finally:
        srv.close()
