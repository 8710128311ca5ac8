"""NFSv4.1 argument and result types (RFC 5662), one definition each, both directions.

Every type has ``pack(Packer)`` and ``unpack(Unpacker)``: the server decodes arguments and
encodes results, the project's client does the opposite, with the same code.  Decoding is
bounded: names <= NFS4_MAXNAME bytes, file handles <= NFS4_FHSIZE, bitmaps <= MAX_BITMAP_WORDS,
opaque owner ids <= NFS4_OPAQUE_LIMIT.  Results carry ``status``; the resok fields are only
meaningful (and only encoded) when it is NFS4_OK.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from securenfs.nfs4.constants import (
    MAX_BITMAP_WORDS,
    NFS4_FHSIZE,
    NFS4_MAXPATH,
    NFS4_OPAQUE_LIMIT,
    NFS4_SESSIONID_SIZE,
    NFS4_VERIFIER_SIZE,
    RPCSEC_GSS_FLAVOR,
    Op,
    StateProtect,
)
from securenfs.xdr import Packer, Unpacker, XdrError

_SEQ_ARGS = struct.Struct(">16sIIII")
_SEQ_RES = struct.Struct(">16sIIIII")
#: Largest COMPOUND tag accepted (utf8str_cs without a bound in the XDR).
MAX_TAG: int = NFS4_OPAQUE_LIMIT
#: Longest list of channel rdma_ird values (the XDR says <1>).
MAX_GSS_HANDLES: int = 16


class Packable(Protocol):
    def pack(self, p: Packer) -> None: ...


T = TypeVar("T")


# -- shared pieces -------------------------------------------------------------------------------


def unpack_bitmap(u: Unpacker) -> list[int]:
    return u.u32_array(MAX_BITMAP_WORDS)


def unpack_fh(u: Unpacker) -> bytes:
    return u.opaque(NFS4_FHSIZE)


def unpack_component(u: Unpacker) -> bytes:
    """A component4 as raw bytes (validated by :func:`securenfs.nfs4.names.check_name`).

    Over-long names are not an XDR error: RFC 8881 gives them NFS4ERR_NAMETOOLONG, so the
    limit here is generous and the name check reports the length.
    """
    return u.opaque(NFS4_OPAQUE_LIMIT)


@dataclass(slots=True)
class Fattr:
    """fattr4: the attribute mask and the packed attribute values (see fattr.py)."""

    mask: list[int] = field(default_factory=list)
    vals: bytes = b""

    def pack(self, p: Packer) -> None:
        p.u32_array(self.mask)
        p.opaque(self.vals)

    @classmethod
    def unpack(cls, u: Unpacker) -> Fattr:
        return cls(unpack_bitmap(u), u.opaque(1 << 20))


@dataclass(slots=True)
class ChannelAttrs:
    """channel_attrs4 (RFC 8881 §18.36)."""

    headerpadsize: int = 0
    maxrequestsize: int = 1 << 20
    maxresponsesize: int = 1 << 20
    maxresponsesize_cached: int = 8192
    maxoperations: int = 16
    maxrequests: int = 16
    rdma_ird: list[int] = field(default_factory=list)

    def pack(self, p: Packer) -> None:
        p.u32x3(self.headerpadsize, self.maxrequestsize, self.maxresponsesize)
        p.u32x3(self.maxresponsesize_cached, self.maxoperations, self.maxrequests)
        p.u32_array(self.rdma_ird)

    @classmethod
    def unpack(cls, u: Unpacker) -> ChannelAttrs:
        return cls(u.u32(), u.u32(), u.u32(), u.u32(), u.u32(), u.u32(), u.u32_array(1))


@dataclass(slots=True)
class ImplId:
    domain: bytes = b""
    name: bytes = b""
    date_sec: int = 0
    date_nsec: int = 0

    def pack(self, p: Packer) -> None:
        p.opaque(self.domain)
        p.opaque(self.name)
        p.i64(self.date_sec)
        p.u32(self.date_nsec)

    @classmethod
    def unpack(cls, u: Unpacker) -> ImplId:
        return cls(u.opaque(NFS4_OPAQUE_LIMIT), u.opaque(NFS4_OPAQUE_LIMIT), u.i64(), u.u32())


def _pack_impl(p: Packer, impl: ImplId | None) -> None:
    if impl is None:
        p.u32(0)
    else:
        p.u32(1)
        impl.pack(p)


def _unpack_impl(u: Unpacker) -> ImplId | None:
    n = u.array_len(1)
    return ImplId.unpack(u) if n else None


@dataclass(slots=True)
class StateProtectOps:
    must_enforce: list[int] = field(default_factory=list)
    must_allow: list[int] = field(default_factory=list)

    def pack(self, p: Packer) -> None:
        p.u32_array(self.must_enforce)
        p.u32_array(self.must_allow)

    @classmethod
    def unpack(cls, u: Unpacker) -> StateProtectOps:
        return cls(unpack_bitmap(u), unpack_bitmap(u))


# -- the results' common shape -----------------------------------------------------------------


@dataclass(slots=True)
class StatusRes:
    """A result that is only a status (PUTFH, SAVEFH, VERIFY, DESTROY_SESSION, ...)."""

    status: int = 0

    def pack(self, p: Packer) -> None:
        p.u32(self.status)

    @classmethod
    def unpack(cls, u: Unpacker) -> StatusRes:
        return cls(u.u32())


@dataclass(slots=True)
class VoidArgs:
    def pack(self, p: Packer) -> None:
        pass

    @classmethod
    def unpack(cls, u: Unpacker) -> VoidArgs:
        return _VOID


_VOID = VoidArgs()


# -- session and client operations -------------------------------------------------------------


@dataclass(slots=True)
class ExchangeIdArgs:
    verifier: bytes
    ownerid: bytes
    flags: int = 0
    how: int = StateProtect.NONE
    mach_ops: StateProtectOps | None = None
    impl: ImplId | None = None

    def pack(self, p: Packer) -> None:
        p.fixed(self.verifier)
        p.opaque(self.ownerid)
        p.u32(self.flags)
        p.u32(self.how)
        if self.how == StateProtect.MACH_CRED:
            (self.mach_ops or StateProtectOps()).pack(p)
        elif self.how != StateProtect.NONE:
            raise ValueError("SP4_SSV is not supported by this client")
        _pack_impl(p, self.impl)

    @classmethod
    def unpack(cls, u: Unpacker) -> ExchangeIdArgs:
        verifier = u.fixed(NFS4_VERIFIER_SIZE)
        ownerid = u.opaque(NFS4_OPAQUE_LIMIT)
        flags = u.u32()
        how = u.u32()
        mach: StateProtectOps | None = None
        if how == StateProtect.MACH_CRED:
            mach = StateProtectOps.unpack(u)
        elif how == StateProtect.SSV:
            # Decoded so the op can answer NFS4ERR_ENCR_ALG_UNSUPP-style refusals cleanly.
            StateProtectOps.unpack(u)
            for _ in range(2):
                for _ in range(u.array_len(16)):
                    u.opaque(NFS4_OPAQUE_LIMIT)
            u.u32()
            u.u32()
        elif how != StateProtect.NONE:
            raise XdrError(f"invalid state_protect_how4 {how}")
        return cls(verifier, ownerid, flags, how, mach, _unpack_impl(u))


@dataclass(slots=True)
class ExchangeIdRes:
    status: int = 0
    clientid: int = 0
    sequenceid: int = 0
    flags: int = 0
    how: int = StateProtect.NONE
    mach_ops: StateProtectOps | None = None
    so_minor_id: int = 0
    so_major_id: bytes = b""
    server_scope: bytes = b""
    impl: ImplId | None = None

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if self.status:
            return
        p.u64(self.clientid)
        p.u32x3(self.sequenceid, self.flags, self.how)
        if self.how == StateProtect.MACH_CRED:
            (self.mach_ops or StateProtectOps()).pack(p)
        p.u64(self.so_minor_id)
        p.opaque(self.so_major_id)
        p.opaque(self.server_scope)
        _pack_impl(p, self.impl)

    @classmethod
    def unpack(cls, u: Unpacker) -> ExchangeIdRes:
        status = u.u32()
        if status:
            return cls(status)
        r = cls(0, u.u64(), u.u32(), u.u32(), u.u32())
        if r.how == StateProtect.MACH_CRED:
            r.mach_ops = StateProtectOps.unpack(u)
        elif r.how != StateProtect.NONE:
            raise XdrError("SP4_SSV results are not supported")
        r.so_minor_id = u.u64()
        r.so_major_id = u.opaque(NFS4_OPAQUE_LIMIT)
        r.server_scope = u.opaque(NFS4_OPAQUE_LIMIT)
        r.impl = _unpack_impl(u)
        return r


@dataclass(slots=True)
class CbSecParms:
    """callback_sec_parms4: kept as flavor + raw body (only recorded until callbacks exist)."""

    flavor: int = 0
    body: bytes = b""


@dataclass(slots=True)
class CreateSessionArgs:
    clientid: int
    sequence: int
    flags: int = 0
    fore: ChannelAttrs = field(default_factory=ChannelAttrs)
    back: ChannelAttrs = field(default_factory=ChannelAttrs)
    cb_program: int = 0x40000000
    sec_parms: list[CbSecParms] = field(default_factory=lambda: [CbSecParms(0)])

    def pack(self, p: Packer) -> None:
        p.u64(self.clientid)
        p.u32x2(self.sequence, self.flags)
        self.fore.pack(p)
        self.back.pack(p)
        p.u32(self.cb_program)
        p.u32(len(self.sec_parms))
        for sp in self.sec_parms:
            p.u32(sp.flavor)
            p.raw(sp.body)

    @classmethod
    def unpack(cls, u: Unpacker) -> CreateSessionArgs:
        a = cls(u.u64(), u.u32(), u.u32(), ChannelAttrs.unpack(u), ChannelAttrs.unpack(u), u.u32(), [])
        for _ in range(u.array_len(MAX_GSS_HANDLES)):
            flavor = u.u32()
            start = u.pos
            if flavor == 1:  # AUTH_SYS: authsys_parms
                u.u32()
                u.opaque(255)
                u.u32()
                u.u32()
                u.u32_array(16)
            elif flavor == RPCSEC_GSS_FLAVOR:  # gss_cb_handles4
                u.u32()
                u.opaque(NFS4_OPAQUE_LIMIT)
                u.opaque(NFS4_OPAQUE_LIMIT)
            elif flavor != 0:
                raise XdrError(f"callback security flavor {flavor} is not known")
            a.sec_parms.append(CbSecParms(flavor, bytes(u.buffer[start : u.pos])))
        return a


@dataclass(slots=True)
class CreateSessionRes:
    status: int = 0
    sessionid: bytes = b""
    sequence: int = 0
    flags: int = 0
    fore: ChannelAttrs = field(default_factory=ChannelAttrs)
    back: ChannelAttrs = field(default_factory=ChannelAttrs)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if self.status:
            return
        p.fixed(self.sessionid)
        p.u32x2(self.sequence, self.flags)
        self.fore.pack(p)
        self.back.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> CreateSessionRes:
        status = u.u32()
        if status:
            return cls(status)
        return cls(0, u.fixed(NFS4_SESSIONID_SIZE), u.u32(), u.u32(), ChannelAttrs.unpack(u), ChannelAttrs.unpack(u))


@dataclass(slots=True)
class SequenceArgs:
    sessionid: bytes
    sequenceid: int
    slotid: int
    highest_slotid: int
    cachethis: bool = False

    def pack(self, p: Packer) -> None:
        p.raw(_SEQ_ARGS.pack(self.sessionid, self.sequenceid, self.slotid, self.highest_slotid,
                             1 if self.cachethis else 0))

    @classmethod
    def unpack(cls, u: Unpacker) -> SequenceArgs:
        view = u.fixed_view(_SEQ_ARGS.size)
        sid, seq, slot, high, cache = _SEQ_ARGS.unpack(view)
        if cache > 1:
            raise XdrError(f"invalid boolean {cache}")
        return cls(sid, seq, slot, high, cache == 1)


@dataclass(slots=True)
class SequenceRes:
    status: int = 0
    sessionid: bytes = b""
    sequenceid: int = 0
    slotid: int = 0
    highest_slotid: int = 0
    target_highest_slotid: int = 0
    status_flags: int = 0

    def pack(self, p: Packer) -> None:
        if self.status:
            p.u32(self.status)
            return
        p.u32(0)
        p.raw(_SEQ_RES.pack(self.sessionid, self.sequenceid, self.slotid, self.highest_slotid,
                            self.target_highest_slotid, self.status_flags))

    @classmethod
    def unpack(cls, u: Unpacker) -> SequenceRes:
        status = u.u32()
        if status:
            return cls(status)
        return cls(0, *_SEQ_RES.unpack(u.fixed_view(_SEQ_RES.size)))


@dataclass(slots=True)
class SessionIdArgs:
    """DESTROY_SESSION4args."""

    sessionid: bytes

    def pack(self, p: Packer) -> None:
        p.fixed(self.sessionid)

    @classmethod
    def unpack(cls, u: Unpacker) -> SessionIdArgs:
        return cls(u.fixed(NFS4_SESSIONID_SIZE))


@dataclass(slots=True)
class ClientIdArgs:
    """DESTROY_CLIENTID4args."""

    clientid: int

    def pack(self, p: Packer) -> None:
        p.u64(self.clientid)

    @classmethod
    def unpack(cls, u: Unpacker) -> ClientIdArgs:
        return cls(u.u64())


@dataclass(slots=True)
class BindConnArgs:
    sessionid: bytes
    dir: int
    rdma: bool = False

    def pack(self, p: Packer) -> None:
        p.fixed(self.sessionid)
        p.u32(self.dir)
        p.bool(self.rdma)

    @classmethod
    def unpack(cls, u: Unpacker) -> BindConnArgs:
        return cls(u.fixed(NFS4_SESSIONID_SIZE), u.u32(), u.bool())


@dataclass(slots=True)
class BindConnRes:
    status: int = 0
    sessionid: bytes = b""
    dir: int = 0
    rdma: bool = False

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.fixed(self.sessionid)
            p.u32(self.dir)
            p.bool(self.rdma)

    @classmethod
    def unpack(cls, u: Unpacker) -> BindConnRes:
        status = u.u32()
        if status:
            return cls(status)
        return cls(0, u.fixed(NFS4_SESSIONID_SIZE), u.u32(), u.bool())


@dataclass(slots=True)
class ReclaimCompleteArgs:
    one_fs: bool = False

    def pack(self, p: Packer) -> None:
        p.bool(self.one_fs)

    @classmethod
    def unpack(cls, u: Unpacker) -> ReclaimCompleteArgs:
        return cls(u.bool())


# -- file handle and namespace operations ------------------------------------------------------


@dataclass(slots=True)
class FhArgs:
    """PUTFH4args."""

    fh: bytes

    def pack(self, p: Packer) -> None:
        p.opaque(self.fh)

    @classmethod
    def unpack(cls, u: Unpacker) -> FhArgs:
        return cls(unpack_fh(u))


@dataclass(slots=True)
class GetFhRes:
    status: int = 0
    fh: bytes = b""

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.opaque(self.fh)

    @classmethod
    def unpack(cls, u: Unpacker) -> GetFhRes:
        status = u.u32()
        return cls(status, b"" if status else unpack_fh(u))


@dataclass(slots=True)
class NameArgs:
    """LOOKUP4args / SECINFO4args: one component."""

    name: bytes

    def pack(self, p: Packer) -> None:
        p.opaque(self.name)

    @classmethod
    def unpack(cls, u: Unpacker) -> NameArgs:
        return cls(unpack_component(u))


@dataclass(slots=True)
class BitmapArgs:
    """GETATTR4args."""

    mask: list[int]

    def pack(self, p: Packer) -> None:
        p.u32_array(self.mask)

    @classmethod
    def unpack(cls, u: Unpacker) -> BitmapArgs:
        return cls(unpack_bitmap(u))


@dataclass(slots=True)
class GetattrRes:
    status: int = 0
    attrs: Fattr = field(default_factory=Fattr)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            self.attrs.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> GetattrRes:
        status = u.u32()
        return cls(status) if status else cls(0, Fattr.unpack(u))


@dataclass(slots=True)
class FattrArgs:
    """VERIFY4args / NVERIFY4args."""

    attrs: Fattr

    def pack(self, p: Packer) -> None:
        self.attrs.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> FattrArgs:
        return cls(Fattr.unpack(u))


@dataclass(slots=True)
class AccessArgs:
    access: int

    def pack(self, p: Packer) -> None:
        p.u32(self.access)

    @classmethod
    def unpack(cls, u: Unpacker) -> AccessArgs:
        return cls(u.u32())


@dataclass(slots=True)
class AccessRes:
    status: int = 0
    supported: int = 0
    access: int = 0

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.u32x2(self.supported, self.access)

    @classmethod
    def unpack(cls, u: Unpacker) -> AccessRes:
        status = u.u32()
        return cls(status) if status else cls(0, u.u32(), u.u32())


@dataclass(slots=True)
class ReadlinkRes:
    status: int = 0
    link: bytes = b""

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.opaque(self.link)

    @classmethod
    def unpack(cls, u: Unpacker) -> ReadlinkRes:
        status = u.u32()
        return cls(status) if status else cls(0, u.opaque(NFS4_MAXPATH))


@dataclass(slots=True)
class ReaddirArgs:
    cookie: int
    cookieverf: bytes
    dircount: int
    maxcount: int
    mask: list[int]

    def pack(self, p: Packer) -> None:
        p.u64(self.cookie)
        p.fixed(self.cookieverf)
        p.u32x2(self.dircount, self.maxcount)
        p.u32_array(self.mask)

    @classmethod
    def unpack(cls, u: Unpacker) -> ReaddirArgs:
        return cls(u.u64(), u.fixed(NFS4_VERIFIER_SIZE), u.u32(), u.u32(), unpack_bitmap(u))


@dataclass(slots=True)
class DirEntry4:
    cookie: int
    name: bytes
    attrs: Fattr


@dataclass(slots=True)
class ReaddirRes:
    """READDIR4res.  The server encodes entries itself (it must count bytes as it goes), so
    ``encoded`` may hold the already-packed entry list; the client fills ``entries``."""

    status: int = 0
    cookieverf: bytes = b"\0" * 8
    entries: list[DirEntry4] = field(default_factory=list)
    eof: bool = False
    encoded: bytes | None = None

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if self.status:
            return
        p.fixed(self.cookieverf)
        if self.encoded is not None:
            p.raw(self.encoded)
        else:
            for e in self.entries:
                pack_dir_entry(p, e.cookie, e.name, e.attrs)
        p.u32(0)
        p.bool(self.eof)

    @classmethod
    def unpack(cls, u: Unpacker) -> ReaddirRes:
        status = u.u32()
        if status:
            return cls(status)
        r = cls(0, u.fixed(NFS4_VERIFIER_SIZE))
        while u.opt():
            r.entries.append(DirEntry4(u.u64(), u.opaque(NFS4_OPAQUE_LIMIT), Fattr.unpack(u)))
        r.eof = u.bool()
        return r


def pack_dir_entry(p: Packer, cookie: int, name: bytes, attrs: Fattr) -> None:
    p.u32(1)  # value_follows
    p.u64(cookie)
    p.opaque(name)
    attrs.pack(p)


@dataclass(slots=True)
class SecinfoEntry:
    """secinfo4: a flavor, and for RPCSEC_GSS the (oid, qop, service) triple."""

    flavor: int
    oid: bytes = b""
    qop: int = 0
    service: int = 0

    def pack(self, p: Packer) -> None:
        p.u32(self.flavor)
        if self.flavor == RPCSEC_GSS_FLAVOR:
            p.opaque(self.oid)
            p.u32x2(self.qop, self.service)

    @classmethod
    def unpack(cls, u: Unpacker) -> SecinfoEntry:
        flavor = u.u32()
        if flavor == RPCSEC_GSS_FLAVOR:
            return cls(flavor, u.opaque(NFS4_OPAQUE_LIMIT), u.u32(), u.u32())
        return cls(flavor)


@dataclass(slots=True)
class SecinfoRes:
    status: int = 0
    entries: list[SecinfoEntry] = field(default_factory=list)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.u32(len(self.entries))
            for e in self.entries:
                e.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> SecinfoRes:
        status = u.u32()
        if status:
            return cls(status)
        return cls(0, [SecinfoEntry.unpack(u) for _ in range(u.array_len(64))])


@dataclass(slots=True)
class SecinfoNoNameArgs:
    style: int

    def pack(self, p: Packer) -> None:
        p.u32(self.style)

    @classmethod
    def unpack(cls, u: Unpacker) -> SecinfoNoNameArgs:
        return cls(u.enum(range(2)))


# -- op -> types ----------------------------------------------------------------------------------

#: Argument type of every operation this module can decode.
ARGS: dict[int, type] = {
    Op.ACCESS: AccessArgs,
    Op.GETATTR: BitmapArgs,
    Op.GETFH: VoidArgs,
    Op.LOOKUP: NameArgs,
    Op.LOOKUPP: VoidArgs,
    Op.NVERIFY: FattrArgs,
    Op.PUTFH: FhArgs,
    Op.PUTPUBFH: VoidArgs,
    Op.PUTROOTFH: VoidArgs,
    Op.READDIR: ReaddirArgs,
    Op.READLINK: VoidArgs,
    Op.RESTOREFH: VoidArgs,
    Op.SAVEFH: VoidArgs,
    Op.SECINFO: NameArgs,
    Op.VERIFY: FattrArgs,
    Op.BIND_CONN_TO_SESSION: BindConnArgs,
    Op.EXCHANGE_ID: ExchangeIdArgs,
    Op.CREATE_SESSION: CreateSessionArgs,
    Op.DESTROY_SESSION: SessionIdArgs,
    Op.SECINFO_NO_NAME: SecinfoNoNameArgs,
    Op.SEQUENCE: SequenceArgs,
    Op.DESTROY_CLIENTID: ClientIdArgs,
    Op.RECLAIM_COMPLETE: ReclaimCompleteArgs,
}

#: Result type of every operation (anything not listed here is status-only).
RESULTS: dict[int, type] = {
    Op.ACCESS: AccessRes,
    Op.GETATTR: GetattrRes,
    Op.GETFH: GetFhRes,
    Op.READDIR: ReaddirRes,
    Op.READLINK: ReadlinkRes,
    Op.SECINFO: SecinfoRes,
    Op.SECINFO_NO_NAME: SecinfoRes,
    Op.BIND_CONN_TO_SESSION: BindConnRes,
    Op.EXCHANGE_ID: ExchangeIdRes,
    Op.CREATE_SESSION: CreateSessionRes,
    Op.SEQUENCE: SequenceRes,
}


def result_type(op: int) -> type:
    return RESULTS.get(op, StatusRes)


# -- COMPOUND envelope ----------------------------------------------------------------------------


@dataclass(slots=True)
class CompoundHeader:
    tag: bytes
    minorversion: int
    numops: int


def unpack_compound_header(u: Unpacker) -> CompoundHeader:
    tag = u.opaque(MAX_TAG)
    minor = u.u32()
    # The count is bounded by the bytes present (each op is at least its 4-byte number);
    # ops are decoded one at a time as they are evaluated (RFC 8881 §15.2).
    n = u.u32()
    return CompoundHeader(tag, minor, n)


def pack_compound_args(p: Packer, tag: bytes, minorversion: int, ops: list[tuple[int, Packable]]) -> None:
    p.opaque(tag)
    p.u32x2(minorversion, len(ops))
    for opnum, args in ops:
        p.u32(opnum)
        args.pack(p)


@dataclass(slots=True)
class CompoundReply:
    status: int
    tag: bytes
    results: list[tuple[int, object]]

    def first_error(self) -> tuple[int, int] | None:
        for op, res in self.results:
            st = getattr(res, "status", 0)
            if st:
                return op, st
        return None


def unpack_compound_reply(u: Unpacker) -> CompoundReply:
    status = u.u32()
    tag = u.opaque(MAX_TAG)
    n = u.array_len(100000)
    results: list[tuple[int, object]] = []
    for _ in range(n):
        op = u.u32()
        typ = result_type(op)
        results.append((op, typ.unpack(u)))  # type: ignore[attr-defined]
    return CompoundReply(status, tag, results)


