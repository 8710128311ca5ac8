"""An asyncio NFSv4.1 client over :class:`~securenfs.client.rpc.RpcClient`.

Builds COMPOUNDs from (op, args) pairs using the same type definitions as the server
(``securenfs.nfs4.xdr4``), manages one session (EXCHANGE_ID, CREATE_SESSION, a slot table with
many requests in flight) and offers the calls tests, benchmarks and the probe need.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from securenfs.client.rpc import AuthSys, ClientAuth, RpcClient
from securenfs.nfs4 import fattr
from securenfs.nfs4.xdr4 import (
    CLAIM_FH,
    CLAIM_NULL,
    CLAIM_PREVIOUS,
    FILE_SYNC4,
    OPEN4_CREATE,
    READ_LT,
    READW_LT,
    UNCHECKED4,
    WRITE_LT,
    WRITEW_LT,
    BitmapArgs,
    ChannelAttrs,
    CinfoRes,
    ClientIdArgs,
    CloseArgs,
    CommitArgs,
    CommitRes,
    CompoundReply,
    CreateArgs,
    CreateRes,
    CreateSessionArgs,
    CreateSessionRes,
    ExchangeIdArgs,
    ExchangeIdRes,
    Fattr,
    FhArgs,
    GetattrRes,
    GetFhRes,
    LockArgs,
    LockRes,
    LocktArgs,
    LockuArgs,
    NameArgs,
    OpenArgs,
    OpenDowngradeArgs,
    OpenRes,
    Packable,
    ReadArgs,
    ReaddirArgs,
    ReaddirRes,
    ReadRes,
    ReclaimCompleteArgs,
    RenameArgs,
    RenameRes,
    SecinfoNoNameArgs,
    SequenceArgs,
    SessionIdArgs,
    SetattrArgs,
    SetattrRes,
    StateidArgs,
    StateidRes,
    StateOwner,
    TestStateidArgs,
    VoidArgs,
    WriteArgs,
    WriteRes,
    pack_compound_args,
    unpack_compound_reply,
)
from securenfs.proto.constants import NFS4_MINOR_VERSION, Attr, Op, SecinfoStyle, stat_text
from securenfs.proto.xdr41 import SECINFO4res
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.xdr import Packer, Unpacker

VOID = VoidArgs()
#: What the Linux client asks for on GETATTR after LOOKUP (a representative set).
LINUX_GETATTR = fattr.set_to_bitmap([
    Attr.TYPE, Attr.CHANGE, Attr.SIZE, Attr.FSID, Attr.FILEID, Attr.MODE, Attr.NUMLINKS, Attr.OWNER,
    Attr.OWNER_GROUP, Attr.RAWDEV, Attr.SPACE_USED, Attr.TIME_ACCESS, Attr.TIME_METADATA, Attr.TIME_MODIFY,
    Attr.MOUNTED_ON_FILEID,
])


class Nfs4Error(Exception):
    """An operation answered something else than NFS4_OK."""

    def __init__(self, op: int, status: int, reply: CompoundReply | None = None):
        try:
            name = Op(op).name
        except ValueError:
            name = str(op)
        super().__init__(f"{name}: {stat_text(status)}")
        self.op = op
        self.status = status
        self.reply = reply


Ops = Sequence[tuple[int, Packable]]


# -- state, I/O and namespace changes (core II) --------------------------------------------------

ANON_STATEID = bytes(16)
BYPASS_STATEID = b"\xff" * 16


@dataclass(slots=True)
class OpenFile:
    """What OPEN returned: the file handle and the open stateid (kept current by the helpers)."""

    fh: bytes
    stateid: bytes
    created: bool = False
    cinfo: Any = None
    attrset: list[int] = field(default_factory=list)


def stateid_seqid(sid: bytes) -> int:
    return int.from_bytes(sid[:4], "big")


class StateOps:
    """OPEN/CLOSE/READ/WRITE/LOCK/... helpers with stateid bookkeeping; mixed into Nfs4Client."""

    async def seq(self, ops: Ops, **kw: Any) -> CompoundReply:  # provided by Nfs4Client
        raise NotImplementedError

    clientid: int

    def _owner(self, owner: bytes | None) -> StateOwner:
        return StateOwner(self.clientid, owner or b"open-owner")

    async def open(self, dir_fh: bytes | None, name: str | None = None, *, access: int = 3, deny: int = 0,
                   create: bool = False, mode: int = UNCHECKED4, attrs: dict[int, Any] | None = None,
                   verifier: bytes = b"", owner: bytes | None = None, fh: bytes | None = None) -> OpenFile:
        """OPEN by name in ``dir_fh`` (CLAIM_NULL) or of ``fh`` (CLAIM_FH)."""
        a = OpenArgs(0, access, deny, self._owner(owner))
        if create:
            a.opentype, a.createmode = OPEN4_CREATE, mode
            a.createattrs = fattr_of(attrs or {})
            a.verifier = verifier or os.urandom(8)
        if fh is not None:
            a.claim = CLAIM_FH
            first: tuple[int, Packable] = (Op.PUTFH, FhArgs(fh))
        else:
            assert dir_fh is not None and name is not None
            a.claim, a.name = CLAIM_NULL, name.encode()
            first = (Op.PUTFH, FhArgs(dir_fh))
        rep = await self.seq([first, (Op.OPEN, a), (Op.GETFH, VOID)])
        res = rep.results[2][1]
        g = rep.results[3][1]
        assert isinstance(res, OpenRes) and isinstance(g, GetFhRes)
        return OpenFile(g.fh, res.stateid, create, res.cinfo, fattr.bitmap_to_set(res.attrset))

    async def reclaim_open(self, fh: bytes, *, access: int = 3, deny: int = 0,
                           owner: bytes | None = None) -> OpenFile:
        """OPEN with CLAIM_PREVIOUS (RFC 8881 §18.16.3): after a server restart, take back
        an open of ``fh`` held before it, during the grace period."""
        a = OpenArgs(0, access, deny, self._owner(owner))
        a.claim, a.claim_deleg_type = CLAIM_PREVIOUS, 0
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.OPEN, a), (Op.GETFH, VOID)])
        res = rep.results[2][1]
        assert isinstance(res, OpenRes)
        return OpenFile(fh, res.stateid, False, res.cinfo, fattr.bitmap_to_set(res.attrset))

    async def reclaim_lock(self, f: OpenFile, offset: int, length: int, *, write: bool = True,
                           lock_owner: bytes | None = None) -> bytes:
        """LOCK with reclaim=true (RFC 8881 §18.10.3) from a reclaimed open; returns the lock
        stateid."""
        a = LockArgs(WRITE_LT if write else READ_LT, True, offset, length, True, 0, f.stateid, 0,
                     StateOwner(self.clientid, lock_owner or b"lock-owner"))
        rep = await self.seq([(Op.PUTFH, FhArgs(f.fh)), (Op.LOCK, a)])
        res = rep.results[-1][1]
        assert isinstance(res, LockRes)
        return res.stateid

    async def close_file(self, f: OpenFile) -> bytes:
        rep = await self.seq([(Op.PUTFH, FhArgs(f.fh)), (Op.CLOSE, CloseArgs(0, f.stateid))])
        res = rep.results[-1][1]
        assert isinstance(res, StateidRes)
        return res.stateid

    async def open_downgrade(self, f: OpenFile, access: int, deny: int = 0) -> bytes:
        rep = await self.seq([(Op.PUTFH, FhArgs(f.fh)), (Op.OPEN_DOWNGRADE, OpenDowngradeArgs(f.stateid, 0, access, deny))])
        res = rep.results[-1][1]
        assert isinstance(res, StateidRes)
        f.stateid = res.stateid
        return res.stateid

    async def read(self, fh: bytes, offset: int, count: int, stateid: bytes = ANON_STATEID) -> ReadRes:
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.READ, ReadArgs(stateid, offset, count))])
        res = rep.results[-1][1]
        assert isinstance(res, ReadRes)
        return res

    async def write(self, fh: bytes, offset: int, data: bytes, stateid: bytes = ANON_STATEID,
                    stable: int = FILE_SYNC4) -> WriteRes:
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.WRITE, WriteArgs(stateid, offset, stable, data))])
        res = rep.results[-1][1]
        assert isinstance(res, WriteRes)
        return res

    async def commit(self, fh: bytes, offset: int = 0, count: int = 0) -> bytes:
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.COMMIT, CommitArgs(offset, count))])
        res = rep.results[-1][1]
        assert isinstance(res, CommitRes)
        return res.verifier

    async def lock(self, f: OpenFile, offset: int, length: int, *, write: bool = True,
                   lock_owner: bytes | None = None, lock_stateid: bytes | None = None, wait: bool = False) -> bytes:
        """LOCK; the first call for a lock-owner passes ``lock_owner`` (new lock-owner from the
        open stateid), later ones ``lock_stateid``.  Returns the lock stateid."""
        lt = (WRITEW_LT if wait else WRITE_LT) if write else (READW_LT if wait else READ_LT)
        if lock_stateid is None:
            a = LockArgs(lt, False, offset, length, True, 0, f.stateid, 0,
                         StateOwner(self.clientid, lock_owner or b"lock-owner"))
        else:
            a = LockArgs(lt, False, offset, length, False, lock_stateid=lock_stateid)
        rep = await self.seq([(Op.PUTFH, FhArgs(f.fh)), (Op.LOCK, a)])
        res = rep.results[-1][1]
        assert isinstance(res, LockRes)
        return res.stateid

    async def lockt(self, fh: bytes, offset: int, length: int, *, write: bool = True,
                    lock_owner: bytes = b"lock-owner") -> LockRes:
        rep = await self.seq_raw([(Op.PUTFH, FhArgs(fh)),  # type: ignore[attr-defined]
                                  (Op.LOCKT, LocktArgs(WRITE_LT if write else READ_LT, offset, length,
                                                       StateOwner(self.clientid, lock_owner)))])
        res = rep.results[-1][1]
        assert isinstance(res, LockRes)
        return res

    async def locku(self, fh: bytes, lock_stateid: bytes, offset: int, length: int) -> bytes:
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.LOCKU, LockuArgs(WRITE_LT, 0, lock_stateid, offset, length))])
        res = rep.results[-1][1]
        assert isinstance(res, StateidRes)
        return res.stateid

    async def setattr(self, fh: bytes, attrs: dict[int, Any], stateid: bytes = ANON_STATEID) -> list[int]:
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.SETATTR, SetattrArgs(stateid, fattr_of(attrs)))])
        res = rep.results[-1][1]
        assert isinstance(res, SetattrRes)
        return fattr.bitmap_to_set(res.attrsset)

    async def create(self, dir_fh: bytes, name: str, objtype: int = 2, *, link: bytes = b"",
                     attrs: dict[int, Any] | None = None) -> tuple[bytes, CreateRes]:
        rep = await self.seq([(Op.PUTFH, FhArgs(dir_fh)),
                              (Op.CREATE, CreateArgs(objtype, name.encode(), fattr_of(attrs or {}), link)),
                              (Op.GETFH, VOID)])
        return rep.results[-1][1].fh, rep.results[-2][1]  # type: ignore[attr-defined,return-value]

    async def remove(self, dir_fh: bytes, name: str) -> CinfoRes:
        rep = await self.seq([(Op.PUTFH, FhArgs(dir_fh)), (Op.REMOVE, NameArgs(name.encode()))])
        return rep.results[-1][1]  # type: ignore[return-value]

    async def rename(self, src_dir: bytes, old: str, dst_dir: bytes, new: str) -> RenameRes:
        rep = await self.seq([(Op.PUTFH, FhArgs(src_dir)), (Op.SAVEFH, VOID), (Op.PUTFH, FhArgs(dst_dir)),
                              (Op.RENAME, RenameArgs(old.encode(), new.encode()))])
        return rep.results[-1][1]  # type: ignore[return-value]

    async def link(self, src: bytes, dst_dir: bytes, name: str) -> CinfoRes:
        rep = await self.seq([(Op.PUTFH, FhArgs(src)), (Op.SAVEFH, VOID), (Op.PUTFH, FhArgs(dst_dir)),
                              (Op.LINK, NameArgs(name.encode()))])
        return rep.results[-1][1]  # type: ignore[return-value]

    async def test_stateids(self, stateids: list[bytes]) -> list[int]:
        rep = await self.seq([(Op.TEST_STATEID, TestStateidArgs(stateids))])
        return rep.results[-1][1].codes  # type: ignore[attr-defined,no-any-return]

    async def free_stateid(self, stateid: bytes) -> None:
        await self.seq([(Op.FREE_STATEID, StateidArgs(stateid))])


def fattr_of(attrs: dict[int, Any]) -> Fattr:
    """Encode settable attributes (SETATTR/CREATE/OPEN): mode, size, owner, owner_group,
    time_access_set / time_modify_set (None: the server's time, (sec, nsec): this time), acl
    (a list of Nfsace4) and dacl ((aclflag4, list of Nfsace4))."""
    p = Packer()
    for a in sorted(attrs):
        v = attrs[a]
        if a in (Attr.TIME_ACCESS_SET, Attr.TIME_MODIFY_SET):
            if v is None:
                p.u32(0)
            else:
                p.u32(1)
                p.i64(v[0])
                p.u32(v[1])
        elif a in (Attr.OWNER, Attr.OWNER_GROUP):
            p.opaque(v.encode() if isinstance(v, str) else v)
        elif a == Attr.SIZE:
            p.u64(v)
        elif a in (Attr.ACL, Attr.DACL):
            aces = v if a == Attr.ACL else v[1]
            if a == Attr.DACL:
                p.u32(v[0])
            p.u32(len(aces))
            for ace in aces:
                ace.pack(p)
        else:
            p.u32(v)
    return Fattr(fattr.set_to_bitmap(list(attrs)), p.getvalue())


class Nfs4Client(StateOps):
    def __init__(self, rpc: RpcClient, auth: ClientAuth | None = None, *, owner: bytes | None = None,
                 slots: int = 16):
        self.rpc = rpc
        self.auth: ClientAuth = auth or AuthSys()
        self.owner = owner or b"securenfs-client-" + os.urandom(8).hex().encode()
        self.verifier = os.urandom(8)
        self.want_slots = slots
        self.clientid = 0
        self.sessionid = b""
        self.fore: ChannelAttrs | None = None
        self.exchange: ExchangeIdRes | None = None
        self._seq: list[int] = []
        self._free: asyncio.Queue[int] | None = None
        self.minorversion = NFS4_MINOR_VERSION

    @classmethod
    async def connect(cls, host: str, port: int, auth: ClientAuth | None = None, **kw: Any) -> Nfs4Client:
        return cls(await RpcClient.connect(host, port), auth, **kw)

    async def close(self) -> None:
        await self.rpc.close()

    # -- raw COMPOUND ------------------------------------------------------------------------
    @staticmethod
    def encode(ops: Ops, tag: bytes = b"", minorversion: int = NFS4_MINOR_VERSION) -> bytes:
        p = Packer()
        pack_compound_args(p, tag, minorversion, list(ops))
        return p.getvalue()

    async def raw(self, args: bytes, auth: ClientAuth | None = None) -> bytes:
        """Send already-encoded COMPOUND arguments; the encoded results come back."""
        return bytes(await self.rpc.call(NFS_PROGRAM, NFS_V4, 1, args, auth or self.auth))

    async def compound(self, ops: Ops, *, tag: bytes = b"", auth: ClientAuth | None = None,
                       minorversion: int | None = None) -> CompoundReply:
        p = Packer()
        pack_compound_args(p, tag, self.minorversion if minorversion is None else minorversion, list(ops))
        # Sent as the encoder's chunks (a WRITE's data is not joined to the COMPOUND), and
        # decoded where it lies: READ data comes back as a view of the reply, not a copy.
        u = Unpacker(await self.rpc.call(NFS_PROGRAM, NFS_V4, 1, p.chunks(), auth or self.auth))
        rep = unpack_compound_reply(u)
        return rep

    @staticmethod
    def check(rep: CompoundReply) -> CompoundReply:
        err = rep.first_error()
        if err is not None:
            raise Nfs4Error(err[0], err[1], rep)
        return rep

    # -- session -----------------------------------------------------------------------------
    async def exchange_id(self, flags: int = 0, auth: ClientAuth | None = None) -> ExchangeIdRes:
        rep = self.check(await self.compound([(Op.EXCHANGE_ID, ExchangeIdArgs(self.verifier, self.owner, flags))],
                                             auth=auth))
        res = rep.results[0][1]
        assert isinstance(res, ExchangeIdRes)
        self.exchange = res
        self.clientid = res.clientid
        return res

    async def create_session(self, auth: ClientAuth | None = None, *, max_ops: int = 16,
                             cached: int = 16384, fore: ChannelAttrs | None = None) -> CreateSessionRes:
        """CREATE_SESSION for the client id of the last EXCHANGE_ID; ``fore`` replaces the
        default fore-channel attributes."""
        assert self.exchange is not None
        # 1 MiB of READ/WRITE data plus the COMPOUND around it.
        fore = fore or ChannelAttrs(0, (1 << 20) + 1024, (1 << 20) + 1024, cached, max_ops, self.want_slots)
        back = ChannelAttrs(0, 4096, 4096, 0, 2, 1)
        rep = self.check(await self.compound(
            [(Op.CREATE_SESSION, CreateSessionArgs(self.clientid, self.exchange.sequenceid, 0, fore, back))], auth=auth))
        res = rep.results[0][1]
        assert isinstance(res, CreateSessionRes)
        self.sessionid = res.sessionid
        self.fore = res.fore
        n = res.fore.maxrequests
        self._seq = [0] * n
        self._free = asyncio.Queue()
        for i in range(n):
            self._free.put_nowait(i)
        return res

    async def establish(self) -> None:
        await self.exchange_id()
        await self.create_session()

    async def seq_raw(self, ops: Ops, *, cachethis: bool = False, auth: ClientAuth | None = None,
                      slot: int | None = None, seqid: int | None = None, tag: bytes = b"") -> CompoundReply:
        """A COMPOUND behind SEQUENCE on a free slot (or the given slot/seqid, for tests)."""
        assert self._free is not None, "no session: call establish() first"
        if slot is not None:
            seq = seqid if seqid is not None else self._seq[slot] + 1
            return await self.compound([(Op.SEQUENCE, SequenceArgs(self.sessionid, seq, slot, len(self._seq) - 1,
                                                                    cachethis)), *ops], auth=auth, tag=tag)
        s = await self._free.get()
        try:
            seq = (self._seq[s] + 1) & 0xFFFFFFFF
            rep = await self.compound([(Op.SEQUENCE, SequenceArgs(self.sessionid, seq, s, len(self._seq) - 1,
                                                                  cachethis)), *ops], auth=auth, tag=tag)
            if rep.results and rep.results[0][0] == Op.SEQUENCE and getattr(rep.results[0][1], "status", 1) == 0:
                self._seq[s] = seq
            return rep
        finally:
            self._free.put_nowait(s)

    async def seq(self, ops: Ops, **kw: Any) -> CompoundReply:
        return self.check(await self.seq_raw(ops, **kw))

    def next_seqid(self, slot: int) -> int:
        return self._seq[slot] + 1

    def advance(self, slot: int) -> None:
        self._seq[slot] += 1

    async def reclaim_complete(self) -> None:
        await self.seq([(Op.RECLAIM_COMPLETE, ReclaimCompleteArgs(False))])

    async def destroy_session(self) -> None:
        self.check(await self.compound([(Op.DESTROY_SESSION, SessionIdArgs(self.sessionid))]))
        self._free = None

    async def destroy_clientid(self) -> None:
        self.check(await self.compound([(Op.DESTROY_CLIENTID, ClientIdArgs(self.clientid))]))

    # -- conveniences ------------------------------------------------------------------------
    @staticmethod
    def path_ops(path: str) -> list[tuple[int, Packable]]:
        ops: list[tuple[int, Packable]] = [(Op.PUTROOTFH, VOID)]
        for comp in [c for c in path.split("/") if c]:
            ops.append((Op.LOOKUP, NameArgs(comp.encode())))
        return ops

    async def lookup_path(self, path: str) -> bytes:
        rep = await self.seq([*self.path_ops(path), (Op.GETFH, VOID)])
        res = rep.results[-1][1]
        assert isinstance(res, GetFhRes)
        return res.fh

    async def getattr(self, fh: bytes, attrs: list[int] | None = None) -> dict[int, Any]:
        mask = fattr.set_to_bitmap(attrs) if attrs is not None else LINUX_GETATTR
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.GETATTR, BitmapArgs(mask))])
        res = rep.results[-1][1]
        assert isinstance(res, GetattrRes)
        return fattr.decode(res.attrs)

    async def secinfo_no_name(self, fh: bytes | None = None, style: int = SecinfoStyle.CURRENT_FH) -> SECINFO4res:
        first: tuple[int, Packable] = (Op.PUTFH, FhArgs(fh)) if fh is not None else (Op.PUTROOTFH, VOID)
        rep = await self.seq([first, (Op.SECINFO_NO_NAME, SecinfoNoNameArgs(style))])
        res = rep.results[-1][1]
        assert isinstance(res, SECINFO4res)
        return res

    async def mount(self, path: str = "/") -> bytes:
        """The sequence a Linux client sends when mounting: EXCHANGE_ID, CREATE_SESSION,
        RECLAIM_COMPLETE, PUTROOTFH + GETATTR, LOOKUPs + GETFH + GETATTR, SECINFO_NO_NAME."""
        await self.establish()
        await self.reclaim_complete()
        await self.seq([(Op.PUTROOTFH, VOID), (Op.GETFH, VOID), (Op.GETATTR, BitmapArgs(LINUX_GETATTR))])
        fh = (await self.seq([*self.path_ops(path), (Op.GETFH, VOID), (Op.GETATTR, BitmapArgs(LINUX_GETATTR))])
              ).results[-2][1].fh  # type: ignore[attr-defined]
        await self.secinfo_no_name(fh)
        return fh  # type: ignore[no-any-return]

    async def readdir_page(self, fh: bytes, cookie: int = 0, verf: bytes = b"\0" * 8, *, dircount: int = 8192,
                           maxcount: int = 32768, attrs: list[int] | None = None) -> ReaddirRes:
        mask = fattr.set_to_bitmap(attrs) if attrs is not None else fattr.set_to_bitmap([Attr.TYPE, Attr.FILEID])
        rep = await self.seq([(Op.PUTFH, FhArgs(fh)), (Op.READDIR, ReaddirArgs(cookie, verf, dircount, maxcount, mask))])
        res = rep.results[-1][1]
        assert isinstance(res, ReaddirRes)
        return res

    async def readdir_all(self, fh: bytes, **kw: Any) -> list[tuple[int, bytes, dict[int, Any]]]:
        out: list[tuple[int, bytes, dict[int, Any]]] = []
        cookie, verf = 0, b"\0" * 8
        for _ in range(1_000_000):
            page = await self.readdir_page(fh, cookie, verf, **kw)
            for e in page.entries:
                out.append((e.cookie, e.name, fattr.decode(e.attrs)))
                cookie = e.cookie
            verf = page.cookieverf
            if page.eof:
                return out
            if not page.entries:
                raise RuntimeError("READDIR returned no entries and no eof")
        raise RuntimeError("READDIR did not finish")



