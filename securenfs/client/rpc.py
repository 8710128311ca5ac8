"""An asyncio ONC RPC client over TCP with many calls in flight, matched by xid."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from securenfs.rpc import message as msg
from securenfs.rpc.auth import AuthSysParms, encode_auth_sys
from securenfs.rpc.constants import AcceptStat, AuthFlavor
from securenfs.rpc.record import LAST_FRAGMENT, RM, cut_fragment

Buffer = bytes | bytearray | memoryview



class RpcError(Exception):
    """The server answered with something other than SUCCESS."""

    def __init__(self, reply: msg.Reply, text: str):
        super().__init__(text)
        self.reply = reply


class ClientAuth(Protocol):
    """How the client authenticates calls (AUTH_NONE, AUTH_SYS, RPCSEC_GSS)."""

    def credential(self) -> tuple[int, bytes, Any]:
        """(flavor, body, per-call state) for a new call."""
        ...

    def verifier(self, header: bytes, state: Any) -> tuple[int, bytes]: ...

    def wrap_args(self, args: bytes, state: Any) -> bytes: ...

    def wrap_args_parts(self, args: Sequence[Buffer], state: Any) -> list[Buffer]:
        """As ``wrap_args`` for arguments in several buffers; the body as buffers to send."""
        ...

    def unwrap_results(self, reply: msg.Reply, state: Any) -> bytes | memoryview: ...


class AuthNone:
    def credential(self) -> tuple[int, bytes, Any]:
        return AuthFlavor.AUTH_NONE, b"", None

    def verifier(self, header: bytes, state: Any) -> tuple[int, bytes]:
        return AuthFlavor.AUTH_NONE, b""

    def wrap_args(self, args: bytes, state: Any) -> bytes:
        return args

    def wrap_args_parts(self, args: Sequence[Buffer], state: Any) -> list[Buffer]:
        return list(args)

    def unwrap_results(self, reply: msg.Reply, state: Any) -> bytes | memoryview:
        assert reply.body is not None
        return reply.body


class AuthSys(AuthNone):
    def __init__(self, uid: int = 0, gid: int = 0, gids: tuple[int, ...] = (), machinename: str = "client"):
        self.parms = AuthSysParms(0, machinename, uid, gid, gids)
        self._body = encode_auth_sys(self.parms)

    def credential(self) -> tuple[int, bytes, Any]:
        return AuthFlavor.AUTH_SYS, self._body, None


@dataclass(slots=True)
class _Pending:
    fut: asyncio.Future[msg.Reply]


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, client: RpcClient):
        self.client = client
        self.buf = bytearray()
        self.frags: list[bytearray | memoryview] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            hdr = RM.unpack_from(buf, pos)[0]
            flen = hdr & 0x7FFFFFFF
            end = pos + 4 + flen
            if end > n:
                break
            frag, rest = cut_fragment(buf, pos + 4, end)
            if rest is None:
                pos = end
            else:  # a large reply (READ data), handed over in the receive buffer
                buf = self.buf = rest
                pos = 0
                n = len(buf)
            if hdr & LAST_FRAGMENT:
                record = b"".join([*self.frags, frag]) if self.frags else frag
                self.frags = []
                self.client._on_record(record)
            else:
                self.frags.append(frag)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._on_lost(exc)


class RpcClient:
    """``await RpcClient.connect(host, port)``, then ``await client.call(...)``."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future[msg.Reply]] = {}
        self._xid = int.from_bytes(os.urandom(4), "big")
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int) -> RpcClient:
        self = cls()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: _ClientProtocol(self), host, port)
        self._transport = transport
        return self

    def next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def _on_record(self, record: bytes | bytearray | memoryview) -> None:
        try:
            reply = msg.decode_reply(memoryview(record))
        except Exception:
            return
        fut = self._pending.pop(reply.xid, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def _on_lost(self, exc: Exception | None) -> None:
        self.closed = True
        err = ConnectionError(f"connection lost: {exc}" if exc else "connection closed by the server")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()

    def send_raw(self, record: bytes, *, fragment_size: int | None = None) -> None:
        """Send an already-encoded call record (optionally split into fragments)."""
        assert self._transport is not None
        if fragment_size is None or fragment_size >= len(record):
            self._transport.writelines([RM.pack(LAST_FRAGMENT | len(record)), record])
            return
        parts = []
        for off in range(0, len(record), fragment_size):
            chunk = record[off : off + fragment_size]
            last = off + fragment_size >= len(record)
            parts.append(RM.pack((LAST_FRAGMENT if last else 0) | len(chunk)))
            parts.append(chunk)
        self._transport.writelines(parts)

    def expect(self, xid: int) -> asyncio.Future[msg.Reply]:
        fut: asyncio.Future[msg.Reply] = asyncio.get_running_loop().create_future()
        self._pending[xid] = fut
        return fut

    async def call_raw(self, xid: int, record: bytes, timeout: float | None = 30.0, **kw: Any) -> msg.Reply:
        if self.closed:
            raise ConnectionError("connection closed")
        fut = self.expect(xid)
        self.send_raw(record, **kw)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(xid, None)

    def build_call(self, prog: int, vers: int, proc: int, args: bytes, auth: ClientAuth) -> tuple[int, bytes, Any]:
        xid = self.next_xid()
        flavor, cred_body, state = auth.credential()
        header = msg.encode_call(xid, prog, vers, proc, flavor, cred_body)
        vf, vb = auth.verifier(header, state)
        return xid, header + msg.encode_opaque_auth(vf, vb) + auth.wrap_args(args, state), state

    async def call(
        self,
        prog: int,
        vers: int,
        proc: int,
        args: Buffer | Sequence[Buffer] = b"",
        auth: ClientAuth | None = None,
        timeout: float | None = 30.0,
    ) -> bytes | memoryview:
        """Make a call and return the (unwrapped) results; raises :class:`RpcError` otherwise.

        ``args`` may be one buffer or several (an encoder's chunks, a WRITE's data among
        them), which are protected and sent without being joined.
        """
        auth = auth or AuthNone()
        if self.closed or self._transport is None:
            raise ConnectionError("connection closed")
        xid = self.next_xid()
        flavor, cred_body, state = auth.credential()
        header = msg.encode_call(xid, prog, vers, proc, flavor, cred_body)
        vf, vb = auth.verifier(header, state)
        head = header + msg.encode_opaque_auth(vf, vb)
        body = auth.wrap_args_parts((args,) if isinstance(args, (bytes, bytearray, memoryview)) else args, state)
        size = len(head)
        for b in body:
            size += len(b)
        fut = self.expect(xid)
        # Header and (possibly megabyte) body go out as they are: no joining copy.
        self._transport.writelines([RM.pack(LAST_FRAGMENT | size), head, *body])
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(xid, None)
        check_reply(reply)
        return auth.unwrap_results(reply, state)

    async def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()
            self.closed = True
            await asyncio.sleep(0)


def check_reply(reply: msg.Reply) -> None:
    if not reply.accepted:
        if reply.mismatch is not None:
            raise RpcError(reply, f"RPC version mismatch {reply.mismatch}")
        raise RpcError(reply, f"authentication error {reply.auth_stat}")
    if reply.accept_stat != AcceptStat.SUCCESS:
        raise RpcError(reply, f"call not accepted: {AcceptStat(reply.accept_stat).name}")
