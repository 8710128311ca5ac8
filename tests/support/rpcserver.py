"""Run the real RPC transport in a background thread for tests that talk to it over TCP."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from securenfs.nfs4.program import Nfs4Program
from securenfs.rpc import message as msg
from securenfs.rpc.auth import Authenticated, Buffers, GarbageArgs
from securenfs.rpc.message import RpcCall
from securenfs.rpc.transport import ProcUnavail, RpcServer, TransportLimits
from securenfs.xdr import Unpacker, XdrError

ECHO_PROGRAM = 0x20000F00  # user-defined range (RFC 5531 §7.3)
ECHO_VERSION = 1
PROC_ECHO = 1  # args: opaque<>, u32 delay_ms; results: the opaque


class EchoProgram:
    """A test program: echoes an opaque after an optional delay (out-of-order replies)."""

    prog = ECHO_PROGRAM
    low_version = ECHO_VERSION
    high_version = ECHO_VERSION

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, call: RpcCall, auth: Authenticated) -> Buffers:
        if call.proc != PROC_ECHO:
            raise ProcUnavail(call.proc)
        u = Unpacker(auth.args)
        try:
            data = u.opaque_view(1 << 22)
            delay = u.u32()
            u.done()
        except XdrError as exc:
            raise GarbageArgs(str(exc)) from None
        self.calls += 1
        if delay:
            await asyncio.sleep(min(delay, 5000) / 1000)
        n = len(data)
        return [struct.pack(">I", n), bytes(data), b"\0" * (-n & 3)]


def echo_args(data: bytes, delay_ms: int = 0) -> bytes:
    n = len(data)
    return struct.pack(">I", n) + data + b"\0" * (-n & 3) + struct.pack(">I", delay_ms)


class ThreadedRpcServer:
    """An RpcServer on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, limits: TransportLimits | None = None,
                 setup: Callable[[RpcServer], Coroutine[Any, Any, None] | None] | None = None):
        self.loop = asyncio.new_event_loop()
        self.server = RpcServer(limits)
        self.server.add_program(Nfs4Program())
        self.echo = EchoProgram()
        self.server.add_program(self.echo)
        self._setup = setup
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-rpc-server", daemon=True)

    def start(self) -> ThreadedRpcServer:
        self._thread.start()

        async def go() -> None:
            if self._setup is not None:
                r = self._setup(self.server)
                if r is not None:
                    await r
            (_, self.port), *_ = await self.server.listen("127.0.0.1", 0)

        self.run(go())
        return self

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.run(self.server.stop(timeout=5))
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()

    # -- plain-socket helpers ------------------------------------------------------------------
    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


@pytest.fixture
def rpc_server() -> Iterator[ThreadedRpcServer]:
    srv = ThreadedRpcServer().start()
    try:
        yield srv
    finally:
        srv.stop()


# -- wire helpers for tests -------------------------------------------------------------------

def record(data: bytes) -> bytes:
    return struct.pack(">I", 0x80000000 | len(data)) + data


def call_bytes(xid: int, prog: int, vers: int, proc: int, args: bytes = b"",
               cred: tuple[int, bytes] = (0, b""), verf: tuple[int, bytes] = (0, b""), rpcvers: int = 2) -> bytes:
    hdr = struct.pack(">IIIIII", xid, 0, rpcvers, prog, vers, proc)
    return hdr + msg.encode_opaque_auth(*cred) + msg.encode_opaque_auth(*verf) + args


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_record(s: socket.socket) -> bytes:
    out = bytearray()
    while True:
        (hdr,) = struct.unpack(">I", recv_exact(s, 4))
        out += recv_exact(s, hdr & 0x7FFFFFFF)
        if hdr & 0x80000000:
            return bytes(out)


def recv_reply(s: socket.socket) -> msg.Reply:
    return msg.decode_reply(memoryview(recv_record(s)))


def random_xid() -> int:
    return random.getrandbits(32)
