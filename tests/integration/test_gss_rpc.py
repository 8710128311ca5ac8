"""RPCSEC_GSS end to end: the real server, a real MIT KDC (k5test), our RPC client.

Every bad call is followed by a good call on the same connection, which must be answered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os

import gssapi
import pytest

from securenfs.client.gss import GssClientAuth, GssClientError, init_call
from securenfs.client.rpc import AuthNone, RpcClient, RpcError
from securenfs.rpc import message as msg
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4, AcceptStat, AuthFlavor, AuthStat
from securenfs.rpcsec_gss import wire
from securenfs.rpcsec_gss.constants import GSS_S_COMPLETE, MAXSEQ, GssProc, GssService
from securenfs.rpcsec_gss.flavors import PseudoFlavor
from tests.support.gss import ECHO_PROG, ECHO_VERS, PROC_ECHO, PROC_WHOAMI, GssServer
from tests.support.kdc import KdcRealm

pytestmark = pytest.mark.timeout(120)

SERVICES = [GssService.NONE, GssService.INTEGRITY, GssService.PRIVACY]
FLAVOR = {GssService.NONE: PseudoFlavor.KRB5, GssService.INTEGRITY: PseudoFlavor.KRB5I,
          GssService.PRIVACY: PseudoFlavor.KRB5P}
NO_REPLY = 0.4


@pytest.fixture(scope="module")
def ccache(kdc_realm: KdcRealm) -> str:
    return str(kdc_realm.user_ccache("alice"))


def target(kdc: KdcRealm) -> str:
    return f"nfs@{kdc.hostname}"


async def connect(srv: GssServer) -> RpcClient:
    return await RpcClient.connect(srv.host, srv.port)


async def establish(c: RpcClient, kdc: KdcRealm, ccache: str, service: GssService = GssService.NONE,
                    **kw: object) -> GssClientAuth:
    return await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, target(kdc), ccache=ccache,
                                         service=service, **kw)  # type: ignore[arg-type]


async def good_call(c: RpcClient, auth: GssClientAuth) -> None:
    assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"ping", auth)) == b"ping"


async def no_reply(c: RpcClient, xid: int, record: bytes) -> bool:
    try:
        await c.call_raw(xid, record, timeout=NO_REPLY)
    except TimeoutError:
        return True
    return False


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# -- the working paths --------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name.lower())
def test_null_and_bodies_under_each_service(server: GssServer, kdc_realm: KdcRealm, ccache: str,
                                            service: GssService) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, service)
        # NULL of NFSv4 under the context: empty results, verifier checked by the client.
        assert bytes(await c.call(NFS_PROGRAM, NFS_V4, 0, b"", auth)) == b""
        body = os.urandom(3000)
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, body, auth)) == body
        big = os.urandom(1 << 20)
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, big, auth)) == big
        who = bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_WHOAMI, b"", auth)).rstrip(b"\0").decode()
        assert who == f"alice@{kdc_realm.realm} {int(FLAVOR[service])} {int(service)}"
        await c.close()

    run(go())


def test_privacy_body_is_encrypted_on_the_wire(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, GssService.PRIVACY)
        secret = b"attack at dawn " * 20
        xid, record, state = c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, secret, auth)
        assert secret[:15] not in record
        reply = await c.call_raw(xid, record)
        assert reply.body is not None and secret[:15] not in bytes(reply.body)
        assert bytes(auth.unwrap_results(reply, state)) == secret
        await c.close()

    run(go())


def test_many_calls_in_flight_out_of_order(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, GssService.INTEGRITY)
        bodies = [os.urandom(100 + i) for i in range(100)]
        built = [c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b, auth) for b in bodies]
        futs = []
        for xid, record, state in reversed(built):  # seq_nums arrive in reverse order
            futs.append((c.expect(xid), state))
            c.send_raw(record)
        for (fut, state), body in zip(futs, reversed(bodies)):
            reply = await asyncio.wait_for(fut, 10)
            assert bytes(auth.unwrap_results(reply, state)) == body
        await c.close()

    run(go())


@pytest.mark.parametrize("service", [GssService.INTEGRITY, GssService.PRIVACY], ids=lambda s: s.name.lower())
def test_client_asking_for_replay_and_sequence_detection(server: GssServer, kdc_realm: KdcRealm, ccache: str,
                                                         service: GssService) -> None:
    """Such a client makes the acceptor inherit GSS-level ordering; reordered calls still work."""
    flags = [gssapi.RequirementFlag.replay_detection, gssapi.RequirementFlag.out_of_sequence_detection]

    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, service, extra_flags=flags)
        built = [c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"m%03d" % i, auth) for i in range(20)]
        order = [3, 0, 2, 1, *range(19, 3, -1)]
        futs = {}
        for i in order:
            xid, record, _ = built[i]
            futs[i] = c.expect(xid)
            c.send_raw(record)
        for i in order:
            reply = await asyncio.wait_for(futs[i], 10)
            assert bytes(auth.unwrap_results(reply, built[i][2])) == b"m%03d" % i
        await c.close()

    run(go())
    kinds = {ctx.protection.kind for ctx in server.handler.table if ctx.protection is not None}
    # Fast path on: OpenSSL serves these contexts too (RPCSEC_GSS's window does replay
    # protection either way); off: MIT through ctypes, which tolerates reordered tokens.
    assert ("openssl" if server.cfg.kerberos.fast_path else "libgss") in kinds


# -- sequence window ---------------------------------------------------------------------------


def test_replayed_seq_num_is_dropped(server: GssServer, kdc_realm: KdcRealm, ccache: str,
                                     caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, GssService.INTEGRITY)
        xid, record, state = c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"once", auth)
        reply = await c.call_raw(xid, record)
        assert bytes(auth.unwrap_results(reply, state)) == b"once"
        assert await no_reply(c, xid, record)
        await good_call(c, auth)
        await c.close()

    with caplog.at_level(logging.INFO, "securenfs"):
        run(go())
    assert "duplicate" in caplog.text


def test_seq_num_far_beyond_the_window(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, GssService.NONE)
        await good_call(c, auth)  # seq 1
        old = c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"old", auth)  # seq 2, held back
        jump = 1_000_000
        auth.force_seq = jump
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"far", auth)) == b"far"
        # The window slid: seq 2 is now far below it and is dropped without a reply.
        assert await no_reply(c, old[0], old[1])
        auth._seq = itertools.count(jump + 1)
        await good_call(c, auth)
        await c.close()

    run(go())


def test_maxseq_ends_the_context(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, GssService.INTEGRITY)
        auth.force_seq = MAXSEQ
        with pytest.raises(RpcError) as ei:
            await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"x", auth)
        assert ei.value.reply.auth_stat == AuthStat.RPCSEC_GSS_CTXPROBLEM
        with pytest.raises(RpcError) as ei:
            await good_call(c, auth)
        assert ei.value.reply.auth_stat == AuthStat.RPCSEC_GSS_CREDPROBLEM
        await good_call(c, await establish(c, kdc_realm, ccache, GssService.INTEGRITY))
        await c.close()

    run(go())


# -- tampering ------------------------------------------------------------------------------


def _flip(record: bytes, offset_from_end: int) -> bytes:
    b = bytearray(record)
    b[len(b) - offset_from_end] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize("service,where", [(GssService.INTEGRITY, 5), (GssService.INTEGRITY, 40),
                                           (GssService.PRIVACY, 30)],
                         ids=["integ-checksum", "integ-body", "priv-payload"])
def test_flipped_bit_is_garbage_args(server: GssServer, kdc_realm: KdcRealm, ccache: str, service: GssService,
                                     where: int, caplog: pytest.LogCaptureFixture) -> None:
    seen_before = server.echo.calls

    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, service)
        xid, record, _ = c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, os.urandom(64), auth)
        reply = await c.call_raw(xid, _flip(record, where))
        assert reply.accepted and reply.accept_stat == AcceptStat.GARBAGE_ARGS
        # The GARBAGE_ARGS reply still carries a valid verifier (RFC 2203 §5.3.3.2).
        assert reply.verf_flavor == AuthFlavor.RPCSEC_GSS
        await good_call(c, auth)
        await c.close()

    with caplog.at_level(logging.WARNING, "securenfs"):
        run(go())
    assert server.echo.calls == seen_before + 1  # only the good call reached the program
    assert "bad checksum" in caplog.text


def test_wrong_seq_inside_the_body(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        for service in (GssService.INTEGRITY, GssService.PRIVACY):
            auth = await establish(c, kdc_realm, ccache, service)
            xid = c.next_xid()
            flavor, cred, state = auth.credential()
            header = msg.encode_call(xid, ECHO_PROG, ECHO_VERS, PROC_ECHO, flavor, cred)
            vf, vb = auth.verifier(header, state)
            state.seq += 7  # body claims another seq_num than the credential
            record = header + msg.encode_opaque_auth(vf, vb) + auth.wrap_args(b"args", state)
            reply = await c.call_raw(xid, record)
            assert reply.accept_stat == AcceptStat.GARBAGE_ARGS
            await good_call(c, auth)
        await c.close()

    run(go())


def test_body_protected_with_another_service_than_the_credential(server: GssServer, kdc_realm: KdcRealm,
                                                                  ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache, GssService.INTEGRITY)
        xid = c.next_xid()
        flavor, _, state = auth.credential()
        cred = wire.encode_cred(wire.GssCred(GssProc.DATA, state.seq, GssService.PRIVACY, auth.handle))
        header = msg.encode_call(xid, ECHO_PROG, ECHO_VERS, PROC_ECHO, flavor, cred)
        vf, vb = auth.verifier(header, state)
        record = header + msg.encode_opaque_auth(vf, vb) + auth.wrap_args(b"args", state)  # integ body
        reply = await c.call_raw(xid, record)
        assert reply.accept_stat == AcceptStat.GARBAGE_ARGS
        await good_call(c, auth)
        await c.close()

    run(go())


def test_tampered_header_is_credproblem(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache)
        xid, record, _ = c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"abcd", auth)
        bad = bytearray(record)
        bad[20] ^= 0x01  # the procedure number, covered by the header MIC
        reply = await c.call_raw(xid, bytes(bad))
        assert not reply.accepted and reply.auth_stat == AuthStat.RPCSEC_GSS_CREDPROBLEM
        await good_call(c, auth)
        await c.close()

    run(go())


# -- context lifecycle ----------------------------------------------------------------------


def test_destroy_then_reuse(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        for service in SERVICES:
            auth = await establish(c, kdc_realm, ccache, service)
            await good_call(c, auth)
            n = len(server.handler.table)
            await auth.destroy(c, ECHO_PROG, ECHO_VERS)
            assert len(server.handler.table) == n - 1
            with pytest.raises(RpcError) as ei:
                await good_call(c, auth)
            assert ei.value.reply.auth_stat == AuthStat.RPCSEC_GSS_CREDPROBLEM
        await good_call(c, await establish(c, kdc_realm, ccache))
        await c.close()

    run(go())


def test_destroy_with_bare_arguments_as_linux_sends_it(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    """The Linux client sends DESTROY under krb5i/krb5p with empty, unwrapped arguments."""
    async def go() -> None:
        c = await connect(server)
        for service in (GssService.INTEGRITY, GssService.PRIVACY):
            auth = await establish(c, kdc_realm, ccache, service)
            await good_call(c, auth)
            n = len(server.handler.table)
            xid = c.next_xid()
            flavor, body, state = auth.destroy_credential()
            header = msg.encode_call(xid, ECHO_PROG, ECHO_VERS, 0, flavor, body)
            vf, vb = auth.verifier(header, state)
            reply = await c.call_raw(xid, header + msg.encode_opaque_auth(vf, vb))  # no body at all
            assert reply.accepted and reply.accept_stat == AcceptStat.SUCCESS
            assert reply.body is not None and len(reply.body) == 0  # and no wrapped reply either
            assert len(server.handler.table) == n - 1
            with pytest.raises(RpcError) as ei:
                await good_call(c, auth)
            assert ei.value.reply.auth_stat == AuthStat.RPCSEC_GSS_CREDPROBLEM
        await c.close()

    run(go())


def test_unknown_handle_is_credproblem(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache)
        real = auth.handle
        auth.handle = os.urandom(16)
        with pytest.raises(RpcError) as ei:
            await good_call(c, auth)
        assert ei.value.reply.auth_stat == AuthStat.RPCSEC_GSS_CREDPROBLEM
        auth.handle = real
        await good_call(c, auth)
        await c.close()

    run(go())


@pytest.mark.parametrize("token", [b"", b"\x00" * 10, b"garbage token!" * 3, os.urandom(70000)],
                         ids=["empty", "zeros", "text", "random-70k"])
def test_garbage_init_token(server: GssServer, kdc_realm: KdcRealm, ccache: str, token: bytes,
                            caplog: pytest.LogCaptureFixture) -> None:
    before = len(server.handler.table)

    async def go() -> None:
        c = await connect(server)
        res, reply = await init_call(c, ECHO_PROG, ECHO_VERS, GssProc.INIT, b"", token)
        assert res.gss_major not in (GSS_S_COMPLETE, 1) and res.handle == b""
        assert reply.verf_flavor == AuthFlavor.AUTH_NONE
        await good_call(c, await establish(c, kdc_realm, ccache))
        await c.close()

    with caplog.at_level(logging.WARNING, "securenfs"):
        run(go())
    assert "context establishment failed" in caplog.text and "likely cause" in caplog.text
    assert len(server.handler.table) == before + 1  # the failed attempts left nothing behind


def test_malformed_credentials(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, ccache)
        for cred in (b"\x00\x00\x00\x02" + b"\x00" * 12, b"\x00\x00\x00\x01\x00", b""):
            xid = c.next_xid()
            record = (msg.encode_call(xid, ECHO_PROG, ECHO_VERS, 1, AuthFlavor.RPCSEC_GSS, cred)
                      + msg.encode_opaque_auth(0, b""))
            reply = await c.call_raw(xid, record)
            assert not reply.accepted and reply.auth_stat == AuthStat.AUTH_BADCRED
        await good_call(c, auth)
        await c.close()

    run(go())


def test_auth_none_still_served_beside_gss(server: GssServer) -> None:
    async def go() -> None:
        c = await connect(server)
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"open", AuthNone())) == b"open"
        await c.close()

    run(go())


def test_concurrent_clients_share_nothing(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    bob = str(kdc_realm.user_ccache("bob"))

    async def one(cc: str, who: str) -> None:
        c = await connect(server)
        auth = await establish(c, kdc_realm, cc, GssService.PRIVACY)
        for _ in range(20):
            got = bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_WHOAMI, b"", auth)).rstrip(b"\0").decode()
            assert got.startswith(f"{who}@")
        await c.close()

    async def go() -> None:
        await asyncio.gather(one(ccache, "alice"), one(bob, "bob"))

    run(go())


def test_establish_error_is_readable(server: GssServer, kdc_realm: KdcRealm, ccache: str) -> None:
    async def go() -> None:
        c = await connect(server)
        with pytest.raises(GssClientError, match="refused the GSS context"):
            # A raw INIT with a token for nothing: the client-side error names the status.
            res, _ = await init_call(c, ECHO_PROG, ECHO_VERS, GssProc.INIT, b"", b"\x60\x01\x00")
            from securenfs.rpcsec_gss.gsserrors import translate
            raise GssClientError(f"server refused the GSS context: {translate(res.gss_major, res.gss_minor).describe()}")
        await c.close()

    run(go())
