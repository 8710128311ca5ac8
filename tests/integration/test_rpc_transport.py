"""The ONC RPC transport over real TCP: good calls, concurrency, fragments, bad input."""

from __future__ import annotations

import asyncio
import socket
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securenfs.client.rpc import AuthSys, RpcClient
from securenfs.rpc import message as msg
from securenfs.rpc.auth import AuthSysParms, encode_auth_sys
from securenfs.rpc.constants import (
    NFS_PROGRAM,
    NFS_V4,
    AcceptStat,
    AuthFlavor,
    AuthStat,
    RejectStat,
)
from securenfs.rpc.transport import TransportLimits
from tests.support.rpcserver import (
    ECHO_PROGRAM,
    ECHO_VERSION,
    PROC_ECHO,
    ThreadedRpcServer,
    call_bytes,
    echo_args,
    random_xid,
    record,
    recv_reply,
)


def null_call(xid: int, **kw: object) -> bytes:
    return record(call_bytes(xid, NFS_PROGRAM, NFS_V4, 0, **kw))  # type: ignore[arg-type]


def assert_still_serving(srv: ThreadedRpcServer, sock: socket.socket | None = None) -> None:
    """A well-formed NULL call is answered (on ``sock`` if given, else a new connection)."""
    own = sock is None
    s = sock or srv.connect()
    try:
        xid = random_xid()
        s.sendall(null_call(xid))
        r = recv_reply(s)
        assert r.xid == xid and r.accepted and r.accept_stat == AcceptStat.SUCCESS
    finally:
        if own:
            s.close()


def test_null_call_from_plain_socket(rpc_server: ThreadedRpcServer) -> None:
    with rpc_server.connect() as s:
        s.sendall(null_call(0x1234))
        r = recv_reply(s)
    assert r.xid == 0x1234
    assert r.accepted and r.accept_stat == AcceptStat.SUCCESS
    assert r.verf_flavor == AuthFlavor.AUTH_NONE and r.body is not None and len(r.body) == 0


def test_null_call_with_auth_sys(rpc_server: ThreadedRpcServer) -> None:
    cred = encode_auth_sys(AuthSysParms(1, "client.example", 1000, 1000, (10, 20)))
    with rpc_server.connect() as s:
        s.sendall(null_call(7, cred=(AuthFlavor.AUTH_SYS, cred)))
        r = recv_reply(s)
    assert r.xid == 7 and r.accept_stat == AcceptStat.SUCCESS


def test_1000_calls_in_flight_across_8_connections(rpc_server: ThreadedRpcServer) -> None:
    """Replies come back as calls complete (random delays reorder them), matched by xid."""

    async def run() -> None:
        clients = [await RpcClient.connect("127.0.0.1", rpc_server.port) for _ in range(8)]
        try:
            async def one(i: int) -> None:
                c = clients[i % 8]
                payload = f"call-{i}".encode() * (1 + i % 5)
                out = await c.call(ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO,
                                   echo_args(payload, delay_ms=(i * 7919) % 40), auth=AuthSys(uid=i))
                assert bytes(out) == struct.pack(">I", len(payload)) + payload + b"\0" * (-len(payload) & 3)

            await asyncio.gather(*(one(i) for i in range(1000)))
        finally:
            for c in clients:
                await c.close()

    asyncio.run(run())
    assert rpc_server.echo.calls == 1000


def test_out_of_order_replies_on_one_connection(rpc_server: ThreadedRpcServer) -> None:
    with rpc_server.connect() as s:
        s.sendall(record(call_bytes(1, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, echo_args(b"slow", 300))))
        s.sendall(record(call_bytes(2, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, echo_args(b"fast", 0))))
        first, second = recv_reply(s), recv_reply(s)
    assert (first.xid, second.xid) == (2, 1)


def test_record_split_into_many_fragments(rpc_server: ThreadedRpcServer) -> None:
    payload = bytes(range(256)) * 40
    body = call_bytes(99, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, echo_args(payload))
    frags = []
    for off in range(0, len(body), 37):
        chunk = body[off : off + 37]
        last = off + 37 >= len(body)
        frags.append(struct.pack(">I", (0x80000000 if last else 0) | len(chunk)) + chunk)
    assert len(frags) > 200
    with rpc_server.connect() as s:
        for f in frags:  # separate sends: the server reassembles across reads too
            s.sendall(f)
        r = recv_reply(s)
        assert r.xid == 99 and r.accept_stat == AcceptStat.SUCCESS
        assert r.body is not None and bytes(r.body)[4 : 4 + len(payload)] == payload
        # empty fragments are legal too
        s.sendall(struct.pack(">I", 0) + null_call(100))
        assert recv_reply(s).xid == 100


# -- bad input --------------------------------------------------------------------------------


def test_truncated_record_then_close(rpc_server: ThreadedRpcServer) -> None:
    with rpc_server.connect() as s:
        full = null_call(5)
        s.sendall(full[:-6])
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b""  # nothing answered for half a call
    assert_still_serving(rpc_server)


def test_huge_fragment_length_closes_only_that_connection(rpc_server: ThreadedRpcServer) -> None:
    other = rpc_server.connect()
    with rpc_server.connect() as s:
        s.sendall(struct.pack(">I", 0x7FFFFFFF) + b"x" * 100)
        s.settimeout(5)
        assert s.recv(100) == b""  # closed by the server
    assert_still_serving(rpc_server, other)  # other connections unaffected
    other.close()
    assert_still_serving(rpc_server)


def test_record_over_configured_limit_is_refused() -> None:
    srv = ThreadedRpcServer(TransportLimits(max_record_size=70000)).start()
    try:
        with srv.connect() as s:
            s.sendall(record(call_bytes(1, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, echo_args(b"a" * 80000))))
            s.settimeout(5)
            assert s.recv(100) == b""
        with srv.connect() as s:  # just under the limit works
            s.sendall(record(call_bytes(2, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, echo_args(b"a" * 60000))))
            assert recv_reply(s).accept_stat == AcceptStat.SUCCESS
    finally:
        srv.stop()


def test_garbage_after_valid_header(rpc_server: ThreadedRpcServer) -> None:
    with rpc_server.connect() as s:
        s.sendall(record(call_bytes(11, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, b"\xff" * 13)))
        r = recv_reply(s)
        assert r.xid == 11 and r.accepted and r.accept_stat == AcceptStat.GARBAGE_ARGS
        s.sendall(null_call(12, ) [:-0 or None] if False else record(call_bytes(12, NFS_PROGRAM, NFS_V4, 0, b"junk")))
        r = recv_reply(s)
        assert r.xid == 12 and r.accept_stat == AcceptStat.GARBAGE_ARGS
        assert_still_serving(rpc_server, s)


def test_rpc_version_3_gets_rpc_mismatch(rpc_server: ThreadedRpcServer) -> None:
    with rpc_server.connect() as s:
        s.sendall(record(call_bytes(21, NFS_PROGRAM, NFS_V4, 0, rpcvers=3)))
        r = recv_reply(s)
        assert r.xid == 21 and not r.accepted
        assert r.reject_stat == RejectStat.RPC_MISMATCH and r.mismatch == (2, 2)
        assert_still_serving(rpc_server, s)


@pytest.mark.parametrize(
    ("prog", "vers", "proc", "stat", "mismatch"),
    [
        (100005, 3, 0, AcceptStat.PROG_UNAVAIL, None),  # MOUNT is not served
        (NFS_PROGRAM, 3, 0, AcceptStat.PROG_MISMATCH, (4, 4)),
        (NFS_PROGRAM, 5, 1, AcceptStat.PROG_MISMATCH, (4, 4)),
        (NFS_PROGRAM, NFS_V4, 99, AcceptStat.PROC_UNAVAIL, None),
        (ECHO_PROGRAM, ECHO_VERSION, 7, AcceptStat.PROC_UNAVAIL, None),
    ],
)
def test_unknown_program_version_procedure(rpc_server: ThreadedRpcServer, prog: int, vers: int, proc: int,
                                           stat: AcceptStat, mismatch: tuple[int, int] | None) -> None:
    with rpc_server.connect() as s:
        s.sendall(record(call_bytes(31, prog, vers, proc)))
        r = recv_reply(s)
        assert r.xid == 31 and r.accepted and r.accept_stat == stat and r.mismatch == mismatch
        assert_still_serving(rpc_server, s)


def _auth_sys_raw(name: bytes, gids: list[int]) -> bytes:
    n = len(name)
    return (struct.pack(">II", 0, n) + name + b"\0" * (-n & 3) + struct.pack(">III", 0, 0, len(gids))
            + struct.pack(f">{len(gids)}I", *gids))


@pytest.mark.parametrize(
    "cred_body",
    [
        _auth_sys_raw(b"host", list(range(1000))),  # 1,000 gids (body > 400 bytes)
        _auth_sys_raw(b"host", list(range(17))),  # 17 gids: within 400 bytes, over the 16 limit
        _auth_sys_raw(b"h" * (1 << 20), []),  # 1 MB machine name
        _auth_sys_raw(b"h" * 256, []),  # machine name over 255 bytes
        _auth_sys_raw(b"host", [1, 2])[:-3],  # truncated body
    ],
    ids=["1000-gids", "17-gids", "1MB-name", "256-name", "truncated"],
)
def test_bad_auth_sys_is_badcred(rpc_server: ThreadedRpcServer, cred_body: bytes) -> None:
    with rpc_server.connect() as s:
        s.sendall(record(call_bytes(41, NFS_PROGRAM, NFS_V4, 0, cred=(AuthFlavor.AUTH_SYS, cred_body))))
        r = recv_reply(s)
        assert r.xid == 41 and not r.accepted
        assert r.reject_stat == RejectStat.AUTH_ERROR and r.auth_stat == AuthStat.AUTH_BADCRED
        assert_still_serving(rpc_server, s)


def test_credential_body_longer_than_its_length_says(rpc_server: ThreadedRpcServer) -> None:
    body = _auth_sys_raw(b"host", [5, 6])
    hdr = struct.pack(">IIIIII", 51, 0, 2, NFS_PROGRAM, NFS_V4, 0)
    # declared length 12 but the whole AUTH_SYS body follows: the rest is read as verifier/args.
    bad = hdr + struct.pack(">II", AuthFlavor.AUTH_SYS, 12) + body + msg.encode_opaque_auth(0, b"")
    with rpc_server.connect() as s:
        s.sendall(record(bad))
        r = recv_reply(s)
        assert r.xid == 51 and not r.accepted and r.reject_stat == RejectStat.AUTH_ERROR
        assert r.auth_stat in (AuthStat.AUTH_BADCRED, AuthStat.AUTH_BADVERF)
        assert_still_serving(rpc_server, s)


def test_unsupported_flavor_and_non_call_messages(rpc_server: ThreadedRpcServer) -> None:
    with rpc_server.connect() as s:
        s.sendall(record(call_bytes(61, NFS_PROGRAM, NFS_V4, 0, cred=(AuthFlavor.AUTH_DH, b"x" * 8))))
        r = recv_reply(s)
        assert r.xid == 61 and r.auth_stat == AuthStat.AUTH_BADCRED
        s.sendall(record(struct.pack(">II", 62, 1) + b"\0" * 20))  # a REPLY sent to the server: dropped
        s.sendall(record(b"\x01\x02"))  # too short for any header: dropped
        assert_still_serving(rpc_server, s)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=300), prefix=st.sampled_from([b"", struct.pack(">II", 9, 0)]))
def test_random_records_never_break_the_server(rpc_server: ThreadedRpcServer, data: bytes, prefix: bytes) -> None:
    with rpc_server.connect() as s:
        s.sendall(record(prefix + data))
        s.sendall(null_call(0xABCDEF))
        s.settimeout(10)
        # Whatever the random record produced (a reply or nothing), the NULL call is answered.
        for _ in range(3):
            r = recv_reply(s)
            if r.xid == 0xABCDEF and r.accepted and r.accept_stat == AcceptStat.SUCCESS:
                break
        else:
            pytest.fail("the server did not answer the well-formed call")


def test_memory_flat_across_10000_bad_records(rpc_server: ThreadedRpcServer) -> None:
    bad = [
        record(call_bytes(1, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, b"\xff" * 40)),
        record(call_bytes(2, NFS_PROGRAM, NFS_V4, 0, rpcvers=3)),
        record(call_bytes(3, NFS_PROGRAM, NFS_V4, 0, cred=(AuthFlavor.AUTH_SYS, b"\x00" * 7))),
        record(call_bytes(4, 999, 1, 0)),
        record(b"\x00\x00\x00\x05\x00\x00\x00\x00\x00"),
    ]

    def blast(count: int) -> None:
        with rpc_server.connect() as s:
            batch = b"".join(bad) * 50
            sent = 0
            import threading

            replies = count // len(bad) * 4  # every bad record but the truncated header gets a reply

            def drain() -> None:
                got = 0
                while got < replies:
                    recv_reply(s)
                    got += 1

            t = threading.Thread(target=drain)
            t.start()
            while sent < count:
                s.sendall(batch)
                sent += 50 * len(bad)
            t.join(60)
            assert not t.is_alive()

    blast(1000)  # warm up caches and buffers
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        blast(10000)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 2 * 1024 * 1024, f"memory grew by {after - before} bytes"
    assert_still_serving(rpc_server)


def test_stop_finishes_calls_in_flight() -> None:
    srv = ThreadedRpcServer().start()
    try:
        s = srv.connect()
        s.sendall(record(call_bytes(71, ECHO_PROGRAM, ECHO_VERSION, PROC_ECHO, echo_args(b"late", 400))))
        import time

        time.sleep(0.1)
        srv.run(srv.server.stop(timeout=5))
        r = recv_reply(s)  # answered although the server was stopping
        assert r.xid == 71 and r.accept_stat == AcceptStat.SUCCESS
        s.settimeout(5)
        assert s.recv(10) == b""
        s.close()
        with pytest.raises(OSError):
            srv.connect()
    finally:
        srv.loop.call_soon_threadsafe(srv.loop.stop)
        srv._thread.join(5)
        srv.loop.close()
