"""Large krb5i/krb5p bodies on the copy-free paths, checked against MIT and through the server.

* ``FastContext.wrap_opaque`` / ``get_mic_pieces`` / ``unwrap_view`` against MIT's
  gss_unwrap / gss_verify_mic / gss_wrap on a real context, for sizes around the XDR
  padding and AES block boundaries and 1 MiB + 3.
* The transport's in-place hand-over of large fragments: 1 MiB + 3 krb5p/krb5i calls sent
  in several fragments, and pipelined behind and ahead of small calls in one write, with
  the server on both engines.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import gssapi
import pytest

from securenfs.client.gss import GssClientAuth
from securenfs.client.rpc import RpcClient
from securenfs.gsscrypto import BadToken, FastContext
from securenfs.rpcsec_gss.constants import GssService
from securenfs.rpcsec_gss.handler import INLINE_MAX
from securenfs.rpcsec_gss.libgss import LibGssProtection
from securenfs.rpcsec_gss.protection import GssapiProtection
from tests.support.gss import ECHO_PROG, ECHO_VERS, PROC_ECHO, GssServer, context_pair, gss_config
from tests.support.kdc import KdcRealm

pytestmark = pytest.mark.timeout(120)

SIZES = [0, 1, 3, 4, 5, 15, 16, 17, 4096, (1 << 20) + 3]


def _pair(kdc_realm: KdcRealm, extra: int = 0) -> tuple[gssapi.SecurityContext, gssapi.SecurityContext]:
    pair: tuple[gssapi.SecurityContext, gssapi.SecurityContext] = context_pair(
        str(kdc_realm.user_ccache("bodies")), kdc_realm.service_keytab, f"nfs@{kdc_realm.hostname}",
        extra_flags=extra)
    return pair


@pytest.fixture(scope="module")
def contexts(kdc_realm: KdcRealm) -> tuple[gssapi.SecurityContext, gssapi.SecurityContext]:
    """An established (initiator, acceptor) pair without replay/sequence flags."""
    return _pair(kdc_realm)


@pytest.mark.parametrize("impl", ["gssapi", "libgss"])
def test_mit_protection_makes_one_call_at_a_time(kdc_realm: KdcRealm, impl: str) -> None:
    """MIT's per-message calls must not run on one context in two threads at once: while one
    holds the context, busy() says so and a second call waits for it."""
    extra = int(gssapi.RequirementFlag.replay_detection) if impl == "libgss" else 0
    ic, ac = _pair(kdc_realm, extra)
    prot = LibGssProtection.from_gssapi(ac) if impl == "libgss" else GssapiProtection(ac)
    assert not prot.busy()
    token = ic.wrap(b"payload", True).message
    done: list[bytes | memoryview] = []
    with prot._lock:  # as a worker thread in the middle of a large unwrap
        assert prot.busy()
        t = threading.Thread(target=lambda: done.append(prot.unwrap(token)))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not done
    t.join(10)
    assert not prot.busy() and [bytes(d) for d in done] == [b"payload"]


def _pieces(data: bytes) -> list[bytes | memoryview]:
    """``data`` cut into uneven pieces (a seq_num-like head, a view, the rest)."""
    a, b = min(4, len(data)), min(4 + 1000, len(data))
    return [data[:a], memoryview(data)[a:b], data[b:]]


@pytest.mark.parametrize("size", SIZES)
def test_wrap_opaque_is_a_token_mit_unwraps(contexts: tuple[gssapi.SecurityContext, gssapi.SecurityContext],
                                            size: int) -> None:
    ic, ac = contexts
    fast = FastContext.from_gss(ic)
    assert fast is not None
    data = os.urandom(size)
    body = bytes(fast.wrap_opaque(_pieces(data)))
    (n,) = struct.unpack(">I", body[:4])
    # XDR opaque<>: length, token, zero padding to a multiple of four (RFC 4506 §4.10).
    assert len(body) == 4 + n + (-n & 3)
    assert body[4 + n:] == bytes(-n & 3)
    res = ac.unwrap(body[4 : 4 + n])
    assert res.encrypted and res.message == data


@pytest.mark.parametrize("size", SIZES)
def test_mic_over_pieces_verifies_in_mit(contexts: tuple[gssapi.SecurityContext, gssapi.SecurityContext],
                                         size: int) -> None:
    ic, ac = contexts
    fast = FastContext.from_gss(ic)
    assert fast is not None
    data = os.urandom(size)
    mic = fast.get_mic_pieces(_pieces(data))
    ac.verify_signature(data, mic)
    with pytest.raises(gssapi.exceptions.GSSError):
        ac.verify_signature(data + b"x", fast.get_mic_pieces(_pieces(data)))


@pytest.mark.parametrize("size", SIZES)
def test_unwrap_view_of_mit_tokens(contexts: tuple[gssapi.SecurityContext, gssapi.SecurityContext],
                                   size: int) -> None:
    ic, ac = contexts
    fast = FastContext.from_gss(ac)
    assert fast is not None
    data = os.urandom(size)
    view, sealed = fast.unwrap_view(ic.wrap(data, True).message)
    assert sealed and isinstance(view, memoryview) and view == data
    # The view has a buffer of its own: the next call does not overwrite it.
    other = os.urandom(size)
    view2, _ = fast.unwrap_view(ic.wrap(other, True).message)
    assert view == data and view2 == other
    signed, sealed = fast.unwrap_view(ic.wrap(data, False).message)
    assert not sealed and signed == data
    token = bytearray(ic.wrap(data, True).message)
    token[-1] ^= 1
    with pytest.raises(BadToken):
        fast.unwrap_view(bytes(token))


@pytest.fixture(scope="module", params=[True, False], ids=["server-fast", "server-mit"])
def server(request: pytest.FixtureRequest, kdc_realm: KdcRealm,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[GssServer]:
    tmp: Path = tmp_path_factory.mktemp("gss-bodies")
    srv = GssServer(gss_config(tmp, kdc_realm.service_keytab, kdc_realm.hostname, fast_path=request.param))
    yield srv
    srv.close()


@pytest.mark.parametrize("client_fast", [True, False], ids=["client-fast", "client-mit"])
@pytest.mark.parametrize("service", [GssService.INTEGRITY, GssService.PRIVACY], ids=["krb5i", "krb5p"])
def test_large_calls_in_fragments_and_pipelined(server: GssServer, kdc_realm: KdcRealm,
                                                service: GssService, client_fast: bool) -> None:
    async def go() -> None:
        c = await RpcClient.connect(server.host, server.port)
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}",
                                             ccache=str(kdc_realm.user_ccache("bodies")), service=service,
                                             fast_path=client_fast)
        big = os.urandom((1 << 20) + 3)
        # One large record in fragments of 300 KiB (each handed over in place) and a last short one.
        xid, record, state = c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, big, auth)
        fut = c.expect(xid)
        c.send_raw(record, fragment_size=300 * 1024)
        assert bytes(auth.unwrap_results(await asyncio.wait_for(fut, 30), state)) == big
        # Small, large, small, large, small in one write: large records arrive with the start
        # of the next one behind them in the receive buffer.
        bodies = [b"a" * 8, big, b"b" * 12, big[::-1], b"c" * 4]
        built = [c.build_call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b, auth) for b in bodies]
        futs = [(c.expect(x), st) for x, _, st in built]
        parts: list[bytes] = []
        for _, rec, _ in built:
            parts += [struct.pack(">I", 0x80000000 | len(rec)), bytes(rec)]
        assert c._transport is not None
        c._transport.writelines(parts)
        for (f, st), body in zip(futs, bodies):
            assert bytes(auth.unwrap_results(await asyncio.wait_for(f, 30), st)) == body
        await c.close()

    asyncio.run(go())



@pytest.mark.parametrize("client_fast", [True, False], ids=["client-fast", "client-mit"])
@pytest.mark.parametrize("service", [GssService.INTEGRITY, GssService.PRIVACY], ids=["krb5i", "krb5p"])
def test_concurrent_large_calls_on_one_context(server: GssServer, kdc_realm: KdcRealm,
                                               service: GssService, client_fast: bool) -> None:
    """Many large calls of one context at once: the server checks and protects them in
    worker threads (above its inline limit) on either engine, and every reply matches its
    call."""

    async def go() -> None:
        c = await RpcClient.connect(server.host, server.port)
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}",
                                             ccache=str(kdc_realm.user_ccache("bodies")), service=service,
                                             fast_path=client_fast)
        bodies = [os.urandom(INLINE_MAX * 16 + i) for i in range(12)]
        bodies.insert(6, b"small")
        for _ in range(2):
            got = await asyncio.gather(*(c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b, auth) for b in bodies))
            assert [bytes(g) for g in got] == bodies
        await c.close()

    asyncio.run(go())


def test_concurrent_large_calls_with_sequence_detection(server: GssServer,
                                                        kdc_realm: KdcRealm) -> None:
    """A context whose initiator asked for replay and sequence detection is served by MIT's
    library through ctypes when the server's fast path is off (MIT's own window would
    reject valid reordered tokens through python-gssapi); its large bodies are still checked
    in worker threads, one library call at a time per context.  (The client is on the fast
    path, which like RPCSEC_GSS ignores the order of the replies' tokens.)"""
    flags = [gssapi.RequirementFlag.replay_detection, gssapi.RequirementFlag.out_of_sequence_detection]

    async def go() -> None:
        c = await RpcClient.connect(server.host, server.port)
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}",
                                             ccache=str(kdc_realm.user_ccache("bodies")),
                                             service=GssService.PRIVACY, extra_flags=flags, fast_path=True)
        bodies = [os.urandom(INLINE_MAX * 8 + i) for i in range(10)]
        for _ in range(3):
            got = await asyncio.gather(*(c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b, auth) for b in bodies))
            assert [bytes(g) for g in got] == bodies
        info = server.call_soon(server.handler.table.get, auth.handle).describe()
        fast = server.cfg.kerberos.fast_path
        assert (info["protection"], info["implementation"]) == (("openssl", "openssl") if fast else ("mit", "libgss"))
        await c.close()

    asyncio.run(go())
