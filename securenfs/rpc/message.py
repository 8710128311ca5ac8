"""RPC call headers and reply encoding (RFC 5531 §9)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from securenfs.rpc.constants import (
    MAX_AUTH_BYTES,
    RPC_VERSION,
    AcceptStat,
    AuthStat,
    MsgType,
    RejectStat,
    ReplyStat,
)
from securenfs.xdr import Unpacker, XdrError

if TYPE_CHECKING:
    from securenfs.rpc.transport import Connection

_HDR6: Final = struct.Struct(">IIIIII")
_HDR7: Final = struct.Struct(">IIIIIII")
_U32: Final = struct.Struct(">I")


class BadCallHeader(Exception):
    """A call header that cannot be served; ``reply`` is what to send (None: drop)."""

    def __init__(self, reason: str, reply: bytes | None, xid: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.reply = reply
        self.xid = xid


@dataclass(slots=True)
class RpcCall:
    """A decoded call header plus the views needed by the authentication layer."""

    xid: int
    prog: int
    vers: int
    proc: int
    cred_flavor: int
    cred_body: memoryview
    verf_flavor: int
    verf_body: memoryview
    record: memoryview
    #: Offset just past the credential: RFC 2203 §5.3.1 computes the RPCSEC_GSS verifier
    #: over the header from the xid through the credential.
    cred_end: int
    args_offset: int
    conn: Connection | None = None

    @property
    def args(self) -> memoryview:
        return self.record[self.args_offset :]

    @property
    def header_for_verifier(self) -> memoryview:
        return self.record[: self.cred_end]


_CALL8: Final = struct.Struct(">8I")
_U32X2: Final = struct.Struct(">II")


def decode_call(record: memoryview) -> RpcCall:
    """Decode a call header.  Raises :class:`BadCallHeader` with the reply to send.

    Hand-unrolled (one struct call for the fixed part) because every call goes through it.
    """
    n = len(record)
    if n < 40:
        return _decode_call_slow(record)
    xid, mtype, rpcvers, prog, vers, proc, cred_flavor, clen = _CALL8.unpack_from(record, 0)
    if mtype != MsgType.CALL or rpcvers != RPC_VERSION or clen > MAX_AUTH_BYTES:
        return _decode_call_slow(record)
    cred_end = 32 + clen + (-clen & 3)
    if cred_end + 8 > n:
        return _decode_call_slow(record)
    verf_flavor, vlen = _U32X2.unpack_from(record, cred_end)
    args = cred_end + 8 + vlen + (-vlen & 3)
    if vlen > MAX_AUTH_BYTES or args > n:
        return _decode_call_slow(record)
    return RpcCall(xid, prog, vers, proc, cred_flavor, record[32 : 32 + clen], verf_flavor,
                   record[cred_end + 8 : cred_end + 8 + vlen], record, cred_end, args)


def _decode_call_slow(record: memoryview) -> RpcCall:
    """The general decoder, which also tells exactly what is wrong with a bad header."""
    if len(record) < 8:
        raise BadCallHeader(f"record of {len(record)} bytes is too short for an RPC header", None)
    u = Unpacker(record)
    xid = u.u32()
    mtype = u.u32()
    if mtype != MsgType.CALL:
        # RFC 5531: a server only answers calls; anything else is dropped.
        raise BadCallHeader(f"message type {mtype} is not a call", None, xid)
    try:
        rpcvers = u.u32()
    except XdrError:
        raise BadCallHeader("truncated call header", garbage_args(xid), xid) from None
    if rpcvers != RPC_VERSION:
        raise BadCallHeader(
            f"RPC version {rpcvers} is not supported (only {RPC_VERSION})",
            rpc_mismatch(xid),
            xid,
        )
    try:
        prog = u.u32()
        vers = u.u32()
        proc = u.u32()
    except XdrError:
        raise BadCallHeader("truncated call header", garbage_args(xid), xid) from None
    try:
        cred_flavor = u.u32()
        cred_body = u.opaque_view(MAX_AUTH_BYTES)
    except XdrError as exc:
        raise BadCallHeader(f"malformed credential: {exc}", auth_error(xid, AuthStat.AUTH_BADCRED), xid) from None
    cred_end = u.pos
    try:
        verf_flavor = u.u32()
        verf_body = u.opaque_view(MAX_AUTH_BYTES)
    except XdrError as exc:
        raise BadCallHeader(f"malformed verifier: {exc}", auth_error(xid, AuthStat.AUTH_BADVERF), xid) from None
    return RpcCall(xid, prog, vers, proc, cred_flavor, cred_body, verf_flavor, verf_body, record, cred_end, u.pos)


# -- reply encoding --------------------------------------------------------------------------


def accepted_header(xid: int, stat: int = AcceptStat.SUCCESS, verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    """Reply header up to and including accept_stat."""
    if verf_flavor == 0 and not verf_body:
        return _HDR6.pack(xid, MsgType.REPLY, ReplyStat.MSG_ACCEPTED, 0, 0, stat)
    n = len(verf_body)
    return b"".join(
        (
            _HDR6.pack(xid, MsgType.REPLY, ReplyStat.MSG_ACCEPTED, verf_flavor, n, 0)[:20],
            verf_body,
            b"\0" * (-n & 3),
            _U32.pack(stat),
        )
    )


def success(xid: int, body: bytes = b"", verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    return accepted_header(xid, AcceptStat.SUCCESS, verf_flavor, verf_body) + body


def garbage_args(xid: int, verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    return accepted_header(xid, AcceptStat.GARBAGE_ARGS, verf_flavor, verf_body)


def system_err(xid: int, verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    return accepted_header(xid, AcceptStat.SYSTEM_ERR, verf_flavor, verf_body)


def prog_unavail(xid: int, verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    return accepted_header(xid, AcceptStat.PROG_UNAVAIL, verf_flavor, verf_body)


def proc_unavail(xid: int, verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    return accepted_header(xid, AcceptStat.PROC_UNAVAIL, verf_flavor, verf_body)


def prog_mismatch(xid: int, low: int, high: int, verf_flavor: int = 0, verf_body: bytes = b"") -> bytes:
    return accepted_header(xid, AcceptStat.PROG_MISMATCH, verf_flavor, verf_body) + _U32.pack(low) + _U32.pack(high)


def rpc_mismatch(xid: int) -> bytes:
    return _HDR7.pack(xid, MsgType.REPLY, ReplyStat.MSG_DENIED, RejectStat.RPC_MISMATCH, RPC_VERSION, RPC_VERSION, 0)[:24]


def auth_error(xid: int, stat: int) -> bytes:
    return _HDR6.pack(xid, MsgType.REPLY, ReplyStat.MSG_DENIED, RejectStat.AUTH_ERROR, stat, 0)[:20]


# -- reply decoding (client side) ------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    """A decoded reply.  ``accepted`` False means MSG_DENIED."""

    xid: int
    accepted: bool
    verf_flavor: int = 0
    verf_body: bytes = b""
    accept_stat: int = 0
    reject_stat: int = 0
    auth_stat: int = 0
    mismatch: tuple[int, int] | None = None
    body: memoryview | None = None


def decode_reply(record: memoryview) -> Reply:
    u = Unpacker(record)
    xid = u.u32()
    if u.u32() != MsgType.REPLY:
        raise XdrError("not a reply")
    stat = u.u32()
    if stat == ReplyStat.MSG_ACCEPTED:
        vf = u.u32()
        vb = u.opaque(MAX_AUTH_BYTES)
        ast = u.u32()
        r = Reply(xid, True, vf, vb, ast)
        if ast == AcceptStat.PROG_MISMATCH:
            r.mismatch = (u.u32(), u.u32())
        elif ast == AcceptStat.SUCCESS:
            r.body = u.rest()
        return r
    if stat == ReplyStat.MSG_DENIED:
        rs = u.u32()
        r = Reply(xid, False, reject_stat=rs)
        if rs == RejectStat.RPC_MISMATCH:
            r.mismatch = (u.u32(), u.u32())
        else:
            r.auth_stat = u.u32()
        return r
    raise XdrError(f"bad reply_stat {stat}")


def encode_call(
    xid: int,
    prog: int,
    vers: int,
    proc: int,
    cred_flavor: int = 0,
    cred_body: bytes = b"",
) -> bytes:
    """Call header up to and including the credential (the verifier is added by the caller)."""
    n = len(cred_body)
    return b"".join(
        (
            _HDR7.pack(xid, MsgType.CALL, RPC_VERSION, prog, vers, proc, cred_flavor),
            _U32.pack(n),
            cred_body,
            b"\0" * (-n & 3),
        )
    )


def encode_opaque_auth(flavor: int, body: bytes) -> bytes:
    n = len(body)
    return _U32.pack(flavor) + _U32.pack(n) + body + b"\0" * (-n & 3)
