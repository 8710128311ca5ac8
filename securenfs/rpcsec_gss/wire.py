"""RPCSEC_GSS version 1 wire structures (RFC 2203 §5).

Every decoder bounds every length before allocating and raises XdrError on bad data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from securenfs.rpcsec_gss.constants import MAX_HANDLE_BYTES, MAX_INIT_TOKEN, RPCSEC_GSS_VERS_1
from securenfs.xdr import Packer, Unpacker, XdrError

_U32: Final = struct.Struct(">I")
_CRED_HEAD: Final = struct.Struct(">IIII")
_PAD: Final = (b"", b"\0\0\0", b"\0\0", b"\0")


@dataclass(slots=True)
class GssCred:
    """rpc_gss_cred_vers_1_t (RFC 2203 §5)."""

    gss_proc: int
    seq_num: int
    service: int
    handle: bytes
    version: int = RPCSEC_GSS_VERS_1


class BadVersion(XdrError):
    """A credential of an RPCSEC_GSS version other than 1."""


def decode_cred(body: memoryview | bytes) -> GssCred:
    u = Unpacker(body)
    version = u.u32()
    if version != RPCSEC_GSS_VERS_1:
        raise BadVersion(f"RPCSEC_GSS version {version} is not supported (only 1)")
    proc = u.u32()
    seq = u.u32()
    service = u.u32()
    handle = u.opaque(MAX_HANDLE_BYTES)
    u.done()
    return GssCred(proc, seq, service, handle, version)


def encode_cred(c: GssCred) -> bytes:
    n = len(c.handle)
    return b"".join((_CRED_HEAD.pack(c.version, c.gss_proc, c.seq_num, c.service), _U32.pack(n), c.handle, _PAD[n & 3]))


def decode_init_arg(args: memoryview | bytes, maxlen: int = MAX_INIT_TOKEN) -> bytes:
    """rpc_gss_init_arg: the GSS token of an INIT/CONTINUE_INIT call."""
    u = Unpacker(args)
    token = u.opaque(maxlen)
    u.done()
    return token


def encode_init_arg(token: bytes) -> bytes:
    p = Packer()
    p.opaque(token)
    return p.getvalue()


@dataclass(slots=True)
class InitRes:
    """rpc_gss_init_res (RFC 2203 §5.2.3.1)."""

    handle: bytes
    gss_major: int
    gss_minor: int
    seq_window: int
    token: bytes


def encode_init_res(r: InitRes) -> bytes:
    p = Packer()
    p.opaque(r.handle)
    p.u32(r.gss_major)
    p.u32(r.gss_minor)
    p.u32(r.seq_window)
    p.opaque(r.token)
    return p.getvalue()


def decode_init_res(body: memoryview | bytes) -> InitRes:
    u = Unpacker(body)
    handle = u.opaque(MAX_HANDLE_BYTES)
    major = u.u32()
    minor = u.u32()
    window = u.u32()
    token = u.opaque(MAX_INIT_TOKEN)
    return InitRes(handle, major, minor, window, token)


def seq_bytes(seq_num: int) -> bytes:
    """The 4-byte big-endian seq_num the reply verifier's MIC covers (RFC 2203 §5.3.3.2)."""
    return _U32.pack(seq_num)


def split_integ(body: memoryview, max_len: int) -> tuple[memoryview, memoryview]:
    """rpc_gss_integ_data -> (databody_integ, checksum)."""
    u = Unpacker(body)
    data = u.opaque_view(max_len)
    checksum = u.opaque_view(1024)
    u.done()
    return data, checksum


def split_priv(body: memoryview, max_len: int) -> memoryview:
    """rpc_gss_priv_data -> databody_priv (the wrap token)."""
    u = Unpacker(body)
    data = u.opaque_view(max_len)
    u.done()
    return data


def opaque_parts(data: bytes | bytearray | memoryview) -> list[bytes | bytearray | memoryview]:
    """An XDR opaque<> as buffers (length, data, pad) without joining large data."""
    n = len(data)
    parts: list[bytes | bytearray | memoryview] = [_U32.pack(n), data]
    if n & 3:
        parts.append(_PAD[n & 3])
    return parts


def take_seq(data: bytes | memoryview) -> tuple[int, memoryview]:
    """rpc_gss_data_t: (seq_num, the procedure arguments or results)."""
    if len(data) < 4:
        raise XdrError("rpc_gss_data_t shorter than its seq_num")
    view = memoryview(data)
    return _U32.unpack_from(view, 0)[0], view[4:]
