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

from securenfs.proto.constants import (
    MAX_BITMAP_WORDS,
    NFS4_FHSIZE,
    NFS4_MAXPATH,
    NFS4_OPAQUE_LIMIT,
    NFS4_SESSIONID_SIZE,
    NFS4_VERIFIER_SIZE,
    Op,
    StateProtect,
)

# The RFC's names (RFC 5662), one definition: the module generated from the RFC's XDR.
from securenfs.proto.xdr41 import CLAIM_DELEG_CUR_FH as CLAIM_DELEG_CUR_FH
from securenfs.proto.xdr41 import CLAIM_DELEG_PREV_FH as CLAIM_DELEG_PREV_FH
from securenfs.proto.xdr41 import CLAIM_DELEGATE_CUR as CLAIM_DELEGATE_CUR
from securenfs.proto.xdr41 import CLAIM_DELEGATE_PREV as CLAIM_DELEGATE_PREV
from securenfs.proto.xdr41 import CLAIM_FH as CLAIM_FH
from securenfs.proto.xdr41 import CLAIM_NULL as CLAIM_NULL
from securenfs.proto.xdr41 import CLAIM_PREVIOUS as CLAIM_PREVIOUS
from securenfs.proto.xdr41 import DATA_SYNC4 as DATA_SYNC4
from securenfs.proto.xdr41 import EXCLUSIVE4 as EXCLUSIVE4
from securenfs.proto.xdr41 import EXCLUSIVE4_1 as EXCLUSIVE4_1
from securenfs.proto.xdr41 import FILE_SYNC4 as FILE_SYNC4
from securenfs.proto.xdr41 import GUARDED4 as GUARDED4
from securenfs.proto.xdr41 import NFS4ERR_DENIED as NFS4ERR_DENIED
from securenfs.proto.xdr41 import OPEN4_CREATE as OPEN4_CREATE
from securenfs.proto.xdr41 import OPEN4_NOCREATE as OPEN4_NOCREATE
from securenfs.proto.xdr41 import OPEN4_RESULT_CONFIRM as OPEN4_RESULT_CONFIRM
from securenfs.proto.xdr41 import OPEN4_RESULT_LOCKTYPE_POSIX as OPEN4_RESULT_LOCKTYPE_POSIX
from securenfs.proto.xdr41 import OPEN4_RESULT_MAY_NOTIFY_LOCK as OPEN4_RESULT_MAY_NOTIFY_LOCK
from securenfs.proto.xdr41 import OPEN4_RESULT_PRESERVE_UNLINKED as OPEN4_RESULT_PRESERVE_UNLINKED
from securenfs.proto.xdr41 import OPEN_DELEGATE_NONE as OPEN_DELEGATE_NONE
from securenfs.proto.xdr41 import OPEN_DELEGATE_NONE_EXT as OPEN_DELEGATE_NONE_EXT
from securenfs.proto.xdr41 import READ_LT as READ_LT
from securenfs.proto.xdr41 import READW_LT as READW_LT
from securenfs.proto.xdr41 import UNCHECKED4 as UNCHECKED4
from securenfs.proto.xdr41 import UNSTABLE4 as UNSTABLE4
from securenfs.proto.xdr41 import WND4_CONTENTION as WND4_CONTENTION
from securenfs.proto.xdr41 import WND4_NOT_WANTED as WND4_NOT_WANTED
from securenfs.proto.xdr41 import WND4_RESOURCE as WND4_RESOURCE
from securenfs.proto.xdr41 import WRITE_LT as WRITE_LT
from securenfs.proto.xdr41 import WRITEW_LT as WRITEW_LT
from securenfs.proto.xdr41 import SECINFO4res, callback_sec_parms4, ssv_sp_parms4
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
    """A component4 as raw bytes (validated by :func:`securenfs.vfs.names.check_name`).

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


@dataclass(slots=True, frozen=True)
class Nfsace4:
    """nfsace4 (RFC 8881 §6.2.1): the who-string is kept as sent (utf8str_mixed)."""

    type: int
    flag: int
    access_mask: int
    who: bytes

    def pack(self, p: Packer) -> None:
        p.u32x3(self.type, self.flag, self.access_mask)
        p.opaque(self.who)

    @classmethod
    def unpack(cls, u: Unpacker) -> Nfsace4:
        return cls(u.u32(), u.u32(), u.u32(), u.opaque(NFS4_OPAQUE_LIMIT))


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
            ssv_sp_parms4.unpack(u)
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
            start = u.pos
            # RFC 5662's union: AUTH_NONE, AUTH_SYS (authsys_parms) or RPCSEC_GSS
            # (gss_cb_handles4); any other flavor is not valid XDR for it.
            parms = callback_sec_parms4.unpack(u)
            a.sec_parms.append(CbSecParms(parms.cb_secflavor, bytes(u.buffer[start + 4 : u.pos])))
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
class SecinfoNoNameArgs:
    style: int

    def pack(self, p: Packer) -> None:
        p.u32(self.style)

    @classmethod
    def unpack(cls, u: Unpacker) -> SecinfoNoNameArgs:
        return cls(u.enum(range(2)))


# -- state operations (core II): stateids, OPEN/CLOSE, I/O, locks, namespace changes ------------

STATEID_SIZE = 16


def unpack_stateid(u: Unpacker) -> bytes:
    return u.fixed(STATEID_SIZE)


@dataclass(slots=True)
class ChangeInfo:
    """change_info4."""

    atomic: bool = False
    before: int = 0
    after: int = 0

    def pack(self, p: Packer) -> None:
        p.bool(self.atomic)
        p.u64(self.before)
        p.u64(self.after)

    @classmethod
    def unpack(cls, u: Unpacker) -> ChangeInfo:
        return cls(u.bool(), u.u64(), u.u64())


@dataclass(slots=True)
class StateOwner:
    """open_owner4 / lock_owner4."""

    clientid: int
    owner: bytes

    def pack(self, p: Packer) -> None:
        p.u64(self.clientid)
        p.opaque(self.owner)

    @classmethod
    def unpack(cls, u: Unpacker) -> StateOwner:
        return cls(u.u64(), u.opaque(NFS4_OPAQUE_LIMIT))




@dataclass(slots=True)
class OpenArgs:
    seqid: int
    share_access: int
    share_deny: int
    owner: StateOwner
    opentype: int = OPEN4_NOCREATE
    createmode: int = UNCHECKED4
    createattrs: Fattr = field(default_factory=Fattr)
    verifier: bytes = b""
    claim: int = CLAIM_NULL
    name: bytes = b""
    #: CLAIM_PREVIOUS: the delegation type; CLAIM_DELEGATE_CUR/DELEG_CUR_FH: the stateid.
    claim_deleg_type: int = 0
    claim_stateid: bytes = b""

    def pack(self, p: Packer) -> None:
        p.u32x3(self.seqid, self.share_access, self.share_deny)
        self.owner.pack(p)
        p.u32(self.opentype)
        if self.opentype == OPEN4_CREATE:
            p.u32(self.createmode)
            if self.createmode in (UNCHECKED4, GUARDED4):
                self.createattrs.pack(p)
            elif self.createmode == EXCLUSIVE4:
                p.fixed(self.verifier)
            else:
                p.fixed(self.verifier)
                self.createattrs.pack(p)
        p.u32(self.claim)
        if self.claim in (CLAIM_NULL, CLAIM_DELEGATE_PREV):
            p.opaque(self.name)
        elif self.claim == CLAIM_PREVIOUS:
            p.u32(self.claim_deleg_type)
        elif self.claim == CLAIM_DELEGATE_CUR:
            p.fixed(self.claim_stateid)
            p.opaque(self.name)
        elif self.claim == CLAIM_DELEG_CUR_FH:
            p.fixed(self.claim_stateid)

    @classmethod
    def unpack(cls, u: Unpacker) -> OpenArgs:
        a = cls(u.u32(), u.u32(), u.u32(), StateOwner.unpack(u))
        a.opentype = u.enum(range(2))
        if a.opentype == OPEN4_CREATE:
            a.createmode = u.enum(range(4))
            if a.createmode in (UNCHECKED4, GUARDED4):
                a.createattrs = Fattr.unpack(u)
            elif a.createmode == EXCLUSIVE4:
                a.verifier = u.fixed(NFS4_VERIFIER_SIZE)
            else:
                a.verifier = u.fixed(NFS4_VERIFIER_SIZE)
                a.createattrs = Fattr.unpack(u)
        a.claim = u.enum(range(7))
        if a.claim in (CLAIM_NULL, CLAIM_DELEGATE_PREV):
            a.name = unpack_component(u)
        elif a.claim == CLAIM_PREVIOUS:
            a.claim_deleg_type = u.u32()
        elif a.claim == CLAIM_DELEGATE_CUR:
            a.claim_stateid = unpack_stateid(u)
            a.name = unpack_component(u)
        elif a.claim == CLAIM_DELEG_CUR_FH:
            a.claim_stateid = unpack_stateid(u)
        return a


@dataclass(slots=True)
class OpenRes:
    status: int = 0
    stateid: bytes = b""
    cinfo: ChangeInfo = field(default_factory=ChangeInfo)
    rflags: int = 0
    attrset: list[int] = field(default_factory=list)
    delegation: int = OPEN_DELEGATE_NONE

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if self.status:
            return
        p.fixed(self.stateid)
        self.cinfo.pack(p)
        p.u32(self.rflags)
        p.u32_array(self.attrset)
        p.u32(self.delegation)
        if self.delegation == OPEN_DELEGATE_NONE_EXT:
            p.u32(WND4_NOT_WANTED)

    @classmethod
    def unpack(cls, u: Unpacker) -> OpenRes:
        status = u.u32()
        if status:
            return cls(status)
        r = cls(0, unpack_stateid(u), ChangeInfo.unpack(u), u.u32(), unpack_bitmap(u), u.u32())
        if r.delegation == OPEN_DELEGATE_NONE_EXT:
            if u.u32() in (WND4_CONTENTION, WND4_RESOURCE):  # these two carry a bool
                u.bool()
        elif r.delegation != OPEN_DELEGATE_NONE:
            raise XdrError("delegations are not decoded by this client")
        return r


@dataclass(slots=True)
class StateidRes:
    """CLOSE4res, OPEN_DOWNGRADE4res, LOCKU4res: a status and a stateid."""

    status: int = 0
    stateid: bytes = b""

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.fixed(self.stateid)

    @classmethod
    def unpack(cls, u: Unpacker) -> StateidRes:
        status = u.u32()
        return cls(status) if status else cls(0, unpack_stateid(u))


@dataclass(slots=True)
class CloseArgs:
    seqid: int
    stateid: bytes

    def pack(self, p: Packer) -> None:
        p.u32(self.seqid)
        p.fixed(self.stateid)

    @classmethod
    def unpack(cls, u: Unpacker) -> CloseArgs:
        return cls(u.u32(), unpack_stateid(u))


@dataclass(slots=True)
class OpenDowngradeArgs:
    stateid: bytes
    seqid: int
    share_access: int
    share_deny: int

    def pack(self, p: Packer) -> None:
        p.fixed(self.stateid)
        p.u32x3(self.seqid, self.share_access, self.share_deny)

    @classmethod
    def unpack(cls, u: Unpacker) -> OpenDowngradeArgs:
        return cls(unpack_stateid(u), u.u32(), u.u32(), u.u32())


@dataclass(slots=True)
class StateidArgs:
    """FREE_STATEID4args."""

    stateid: bytes

    def pack(self, p: Packer) -> None:
        p.fixed(self.stateid)

    @classmethod
    def unpack(cls, u: Unpacker) -> StateidArgs:
        return cls(unpack_stateid(u))


#: Most stateids one TEST_STATEID may carry (bounded decoding).
MAX_TEST_STATEIDS = 1024


@dataclass(slots=True)
class TestStateidArgs:
    stateids: list[bytes]

    def pack(self, p: Packer) -> None:
        p.u32(len(self.stateids))
        for s in self.stateids:
            p.fixed(s)

    @classmethod
    def unpack(cls, u: Unpacker) -> TestStateidArgs:
        return cls([unpack_stateid(u) for _ in range(u.array_len(MAX_TEST_STATEIDS, STATEID_SIZE))])


@dataclass(slots=True)
class TestStateidRes:
    status: int = 0
    codes: list[int] = field(default_factory=list)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.u32_array(self.codes)

    @classmethod
    def unpack(cls, u: Unpacker) -> TestStateidRes:
        status = u.u32()
        return cls(status) if status else cls(0, u.u32_array(MAX_TEST_STATEIDS))


@dataclass(slots=True)
class ReadArgs:
    stateid: bytes
    offset: int
    count: int

    def pack(self, p: Packer) -> None:
        p.fixed(self.stateid)
        p.u64(self.offset)
        p.u32(self.count)

    @classmethod
    def unpack(cls, u: Unpacker) -> ReadArgs:
        return cls(unpack_stateid(u), u.u64(), u.u32())


@dataclass(slots=True)
class ReadRes:
    status: int = 0
    eof: bool = False
    data: bytes | bytearray | memoryview = b""

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.bool(self.eof)
            p.opaque(self.data)  # large buffers stay separate chunks (no copy)

    @classmethod
    def unpack(cls, u: Unpacker) -> ReadRes:
        status = u.u32()
        # A view of the reply (no copy of the data); the client owns the reply buffer.
        return cls(status) if status else cls(0, u.bool(), u.opaque_view(1 << 30))


@dataclass(slots=True)
class WriteArgs:
    stateid: bytes
    offset: int
    stable: int
    data: bytes | memoryview

    def pack(self, p: Packer) -> None:
        p.fixed(self.stateid)
        p.u64(self.offset)
        p.u32(self.stable)
        p.opaque(self.data)

    @classmethod
    def unpack(cls, u: Unpacker) -> WriteArgs:
        # The data stays a view of the request buffer (no copy before the write).
        return cls(unpack_stateid(u), u.u64(), u.enum(range(3)), u.opaque_view(1 << 30))


@dataclass(slots=True)
class WriteRes:
    status: int = 0
    count: int = 0
    committed: int = FILE_SYNC4
    verifier: bytes = b"\0" * 8

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.u32x2(self.count, self.committed)
            p.fixed(self.verifier)

    @classmethod
    def unpack(cls, u: Unpacker) -> WriteRes:
        status = u.u32()
        return cls(status) if status else cls(0, u.u32(), u.u32(), u.fixed(NFS4_VERIFIER_SIZE))


@dataclass(slots=True)
class CommitArgs:
    offset: int
    count: int

    def pack(self, p: Packer) -> None:
        p.u64(self.offset)
        p.u32(self.count)

    @classmethod
    def unpack(cls, u: Unpacker) -> CommitArgs:
        return cls(u.u64(), u.u32())


@dataclass(slots=True)
class CommitRes:
    status: int = 0
    verifier: bytes = b"\0" * 8

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            p.fixed(self.verifier)

    @classmethod
    def unpack(cls, u: Unpacker) -> CommitRes:
        status = u.u32()
        return cls(status) if status else cls(0, u.fixed(NFS4_VERIFIER_SIZE))


@dataclass(slots=True)
class SetattrArgs:
    stateid: bytes
    attrs: Fattr

    def pack(self, p: Packer) -> None:
        p.fixed(self.stateid)
        self.attrs.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> SetattrArgs:
        return cls(unpack_stateid(u), Fattr.unpack(u))


@dataclass(slots=True)
class SetattrRes:
    """SETATTR4res: attrsset is encoded whatever the status (RFC 5662)."""

    status: int = 0
    attrsset: list[int] = field(default_factory=list)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        p.u32_array(self.attrsset)

    @classmethod
    def unpack(cls, u: Unpacker) -> SetattrRes:
        return cls(u.u32(), unpack_bitmap(u))


@dataclass(slots=True)
class CreateArgs:
    objtype: int
    name: bytes
    attrs: Fattr = field(default_factory=Fattr)
    linkdata: bytes = b""
    spec: tuple[int, int] = (0, 0)

    def pack(self, p: Packer) -> None:
        p.u32(self.objtype)
        if self.objtype == 5:  # NF4LNK
            p.opaque(self.linkdata)
        elif self.objtype in (3, 4):  # NF4BLK, NF4CHR
            p.u32x2(*self.spec)
        p.opaque(self.name)
        self.attrs.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> CreateArgs:
        t = u.u32()
        link = b""
        spec = (0, 0)
        if t == 5:
            link = u.opaque(NFS4_MAXPATH)
        elif t in (3, 4):
            spec = (u.u32(), u.u32())
        name = unpack_component(u)
        return cls(t, name, Fattr.unpack(u), link, spec)


@dataclass(slots=True)
class CreateRes:
    status: int = 0
    cinfo: ChangeInfo = field(default_factory=ChangeInfo)
    attrset: list[int] = field(default_factory=list)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            self.cinfo.pack(p)
            p.u32_array(self.attrset)

    @classmethod
    def unpack(cls, u: Unpacker) -> CreateRes:
        status = u.u32()
        return cls(status) if status else cls(0, ChangeInfo.unpack(u), unpack_bitmap(u))


@dataclass(slots=True)
class CinfoRes:
    """REMOVE4res / LINK4res."""

    status: int = 0
    cinfo: ChangeInfo = field(default_factory=ChangeInfo)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            self.cinfo.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> CinfoRes:
        status = u.u32()
        return cls(status) if status else cls(0, ChangeInfo.unpack(u))


@dataclass(slots=True)
class RenameArgs:
    oldname: bytes
    newname: bytes

    def pack(self, p: Packer) -> None:
        p.opaque(self.oldname)
        p.opaque(self.newname)

    @classmethod
    def unpack(cls, u: Unpacker) -> RenameArgs:
        return cls(unpack_component(u), unpack_component(u))


@dataclass(slots=True)
class RenameRes:
    status: int = 0
    source: ChangeInfo = field(default_factory=ChangeInfo)
    target: ChangeInfo = field(default_factory=ChangeInfo)

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if not self.status:
            self.source.pack(p)
            self.target.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> RenameRes:
        status = u.u32()
        return cls(status) if status else cls(0, ChangeInfo.unpack(u), ChangeInfo.unpack(u))


@dataclass(slots=True)
class LockArgs:
    locktype: int
    reclaim: bool
    offset: int
    length: int
    new_lock_owner: bool
    # new_lock_owner: open_to_lock_owner4
    open_seqid: int = 0
    open_stateid: bytes = b""
    lock_seqid: int = 0
    lock_owner: StateOwner | None = None
    # existing lock owner: exist_lock_owner4
    lock_stateid: bytes = b""

    def pack(self, p: Packer) -> None:
        p.u32(self.locktype)
        p.bool(self.reclaim)
        p.u64(self.offset)
        p.u64(self.length)
        p.bool(self.new_lock_owner)
        if self.new_lock_owner:
            assert self.lock_owner is not None
            p.u32(self.open_seqid)
            p.fixed(self.open_stateid)
            p.u32(self.lock_seqid)
            self.lock_owner.pack(p)
        else:
            p.fixed(self.lock_stateid)
            p.u32(self.lock_seqid)

    @classmethod
    def unpack(cls, u: Unpacker) -> LockArgs:
        a = cls(u.enum(range(1, 5)), u.bool(), u.u64(), u.u64(), u.bool())
        if a.new_lock_owner:
            a.open_seqid = u.u32()
            a.open_stateid = unpack_stateid(u)
            a.lock_seqid = u.u32()
            a.lock_owner = StateOwner.unpack(u)
        else:
            a.lock_stateid = unpack_stateid(u)
            a.lock_seqid = u.u32()
        return a


@dataclass(slots=True)
class LockDenied:
    offset: int
    length: int
    locktype: int
    owner: StateOwner

    def pack(self, p: Packer) -> None:
        p.u64(self.offset)
        p.u64(self.length)
        p.u32(self.locktype)
        self.owner.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> LockDenied:
        return cls(u.u64(), u.u64(), u.u32(), StateOwner.unpack(u))


@dataclass(slots=True)
class LockRes:
    """LOCK4res and LOCKT4res: a stateid on success (LOCK), LOCK4denied with DENIED."""

    status: int = 0
    stateid: bytes = b""
    denied: LockDenied | None = None
    has_stateid: bool = True

    def pack(self, p: Packer) -> None:
        p.u32(self.status)
        if self.status == 0:
            if self.has_stateid:
                p.fixed(self.stateid)
        elif self.status == NFS4ERR_DENIED:
            assert self.denied is not None
            self.denied.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> LockRes:
        status = u.u32()
        if status == 0:
            return cls(0, unpack_stateid(u))
        if status == NFS4ERR_DENIED:
            return cls(status, denied=LockDenied.unpack(u))
        return cls(status)


@dataclass(slots=True)
class LocktRes(LockRes):
    @classmethod
    def unpack(cls, u: Unpacker) -> LocktRes:
        status = u.u32()
        if status == NFS4ERR_DENIED:
            return cls(status, denied=LockDenied.unpack(u), has_stateid=False)
        return cls(status, has_stateid=False)


@dataclass(slots=True)
class LocktArgs:
    locktype: int
    offset: int
    length: int
    owner: StateOwner

    def pack(self, p: Packer) -> None:
        p.u32(self.locktype)
        p.u64(self.offset)
        p.u64(self.length)
        self.owner.pack(p)

    @classmethod
    def unpack(cls, u: Unpacker) -> LocktArgs:
        return cls(u.enum(range(1, 5)), u.u64(), u.u64(), StateOwner.unpack(u))


@dataclass(slots=True)
class LockuArgs:
    locktype: int
    seqid: int
    stateid: bytes
    offset: int
    length: int

    def pack(self, p: Packer) -> None:
        p.u32x2(self.locktype, self.seqid)
        p.fixed(self.stateid)
        p.u64(self.offset)
        p.u64(self.length)

    @classmethod
    def unpack(cls, u: Unpacker) -> LockuArgs:
        return cls(u.enum(range(1, 5)), u.u32(), unpack_stateid(u), u.u64(), u.u64())


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
    Op.OPEN: OpenArgs,
    Op.CLOSE: CloseArgs,
    Op.OPEN_DOWNGRADE: OpenDowngradeArgs,
    Op.TEST_STATEID: TestStateidArgs,
    Op.FREE_STATEID: StateidArgs,
    Op.READ: ReadArgs,
    Op.WRITE: WriteArgs,
    Op.COMMIT: CommitArgs,
    Op.SETATTR: SetattrArgs,
    Op.CREATE: CreateArgs,
    Op.REMOVE: NameArgs,
    Op.RENAME: RenameArgs,
    Op.LINK: NameArgs,
    Op.LOCK: LockArgs,
    Op.LOCKT: LocktArgs,
    Op.LOCKU: LockuArgs,
}

#: Result type of every operation (anything not listed here is status-only).
RESULTS: dict[int, type] = {
    Op.ACCESS: AccessRes,
    Op.GETATTR: GetattrRes,
    Op.GETFH: GetFhRes,
    Op.READDIR: ReaddirRes,
    Op.READLINK: ReadlinkRes,
    Op.SECINFO: SECINFO4res,
    Op.SECINFO_NO_NAME: SECINFO4res,
    Op.BIND_CONN_TO_SESSION: BindConnRes,
    Op.EXCHANGE_ID: ExchangeIdRes,
    Op.CREATE_SESSION: CreateSessionRes,
    Op.SEQUENCE: SequenceRes,
    Op.OPEN: OpenRes,
    Op.CLOSE: StateidRes,
    Op.OPEN_DOWNGRADE: StateidRes,
    Op.TEST_STATEID: TestStateidRes,
    Op.READ: ReadRes,
    Op.WRITE: WriteRes,
    Op.COMMIT: CommitRes,
    Op.SETATTR: SetattrRes,
    Op.CREATE: CreateRes,
    Op.REMOVE: CinfoRes,
    Op.RENAME: RenameRes,
    Op.LINK: CinfoRes,
    Op.LOCK: LockRes,
    Op.LOCKT: LocktRes,
    Op.LOCKU: StateidRes,
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


