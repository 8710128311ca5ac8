"""Client and session operations (RFC 8881 §18.35-18.37, §18.34, §18.50, §18.51)."""

from __future__ import annotations

import logging

from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.fattr import bitmap_to_set, set_to_bitmap
from securenfs.nfs4.xdr4 import (
    BindConnArgs,
    BindConnRes,
    ChannelAttrs,
    ClientIdArgs,
    CreateSessionArgs,
    CreateSessionRes,
    ExchangeIdArgs,
    ExchangeIdRes,
    ImplId,
    ReclaimCompleteArgs,
    SessionIdArgs,
    StateProtectOps,
    StatusRes,
)
from securenfs.proto.constants import (
    ChannelDirFromClient,
    ChannelDirFromServer,
    CreateSessionFlag,
    Op,
    Stat,
    StateProtect,
)
from securenfs.proto.errors import Nfs4Error
from securenfs.state.clients import Client, ExchangeRequest, principal_of
from securenfs.state.sessions import Channel

log = logging.getLogger("securenfs.nfs4")

#: eir_server_impl_id (RFC 8881 §18.35.3).
IMPL_ID = ImplId(b"securenfs.org", b"securenfs NFSv4.1 server", 0, 0)

_OK = StatusRes(0)
_CSA_FLAGS = int(CreateSessionFlag.PERSIST | CreateSessionFlag.CONN_BACK_CHAN | CreateSessionFlag.CONN_RDMA)
#: Largest backchannel slot table recorded (callbacks are not sent yet).
_MAX_BACK_SLOTS = 16


def _channel_attrs(ch: Channel) -> ChannelAttrs:
    """channel_attrs4 of a granted channel: no header padding, no RDMA (RFC 8881 §18.36.3)."""
    return ChannelAttrs(0, ch.maxrequestsize, ch.maxresponsesize, ch.maxresponsesize_cached,
                        ch.maxoperations, ch.maxrequests, [])


def check_mach_cred(ctx: CompoundContext, client: Client, op: Op) -> None:
    """SP4_MACH_CRED (RFC 8881 §2.10.8.3): ops the client asked to protect must come from the
    machine principal that created the client id."""
    if client.sp_how == StateProtect.MACH_CRED and op in client.enforce:
        if principal_of(ctx.cred) != client.principal:
            raise Nfs4Error(Stat.WRONG_CRED, f"{op.name} must use the client's machine credential")


async def op_exchange_id(ctx: CompoundContext, a: ExchangeIdArgs) -> ExchangeIdRes:
    ctx.svc.admit_client(a.ownerid, ctx.peer)
    table = ctx.svc.clients
    mach = a.mach_ops if a.how == StateProtect.MACH_CRED else None
    req = ExchangeRequest(
        a.ownerid, a.verifier, a.flags, a.how,
        frozenset(bitmap_to_set(mach.must_enforce)) if mach is not None else frozenset(),
        frozenset(bitmap_to_set(mach.must_allow)) if mach is not None else frozenset(),
        a.impl,
    )
    try:
        out = table.exchange_id(req, ctx.cred, ctx.peer)
        c = out.client
        return ExchangeIdRes(
            0, c.clientid, (c.cs_seq + 1) & 0xFFFFFFFF, out.flags, c.sp_how,
            StateProtectOps(set_to_bitmap(sorted(c.enforce)), set_to_bitmap(sorted(c.allow)))
            if c.sp_how == StateProtect.MACH_CRED else None,
            0, table.server_owner, table.server_scope, IMPL_ID,
        )
    finally:
        # A refused EXCHANGE_ID must not leave an owner entry without a record behind.
        ctx.svc.clients.discard_empty_owner(a.ownerid)


async def op_create_session(ctx: CompoundContext, a: CreateSessionArgs) -> CreateSessionRes:
    svc = ctx.svc
    c = svc.clients.require(a.clientid)
    if not c.confirmed and c.principal != principal_of(ctx.cred):
        raise Nfs4Error(Stat.CLID_INUSE, "CREATE_SESSION by another principal than EXCHANGE_ID's")
    check_mach_cred(ctx, c, Op.CREATE_SESSION)
    svc.admit_session(c, a.sequence, ctx.peer)
    # CREATE_SESSION has its own one-slot replay cache (RFC 8881 §18.36.4).
    if a.sequence == c.cs_seq and c.cs_reply is not None:
        return c.cs_reply  # type: ignore[return-value]
    if a.sequence != (c.cs_seq + 1) & 0xFFFFFFFF:
        raise Nfs4Error(Stat.SEQ_MISORDERED, f"csa_sequence {a.sequence}, expected {(c.cs_seq + 1) & 0xFFFFFFFF}")
    if a.flags & ~_CSA_FLAGS:
        # RFC 8881 §18.36.3 defines three csa_flags bits; others are not flags of this
        # minor version.
        raise Nfs4Error(Stat.INVAL, f"unknown csa_flags {a.flags & ~_CSA_FLAGS:#x}")
    fore = svc.sessions.negotiate(a.fore)
    svc.sessions.check_back(a.back)
    b = a.back
    back = Channel(b.maxrequestsize, b.maxresponsesize, b.maxresponsesize_cached,
                   b.maxoperations, max(1, min(b.maxrequests, _MAX_BACK_SLOTS)))
    # No persistent reply cache, no RDMA; the backchannel attributes are recorded but no
    # callback is sent yet, so CONN_BACK_CHAN is not granted (RFC 8881 §18.36.3).
    flags = a.flags & ~int(CreateSessionFlag.PERSIST | CreateSessionFlag.CONN_RDMA | CreateSessionFlag.CONN_BACK_CHAN)
    if not c.confirmed:
        # The stable record is written before the client's first open (Nfs4Service.
        # record_state_holder), not here: a client that never holds state has nothing to
        # reclaim, and grace after a crash must not wait for it.
        svc.clients.confirm(c)
    s = svc.sessions.create(c, fore, back, flags, a.cb_program, a.sec_parms, ctx.conn_id)
    if ctx.conn is not None:
        svc.sessions.watch(ctx.conn)
    c.renew()
    c.cs_seq = a.sequence
    res = CreateSessionRes(0, s.sessionid, a.sequence, flags, _channel_attrs(fore), _channel_attrs(back))
    c.cs_reply = res
    log.info("%s: session %s created (%d slots, %d ops, max request %d)", c.describe(), s.sessionid.hex(),
             fore.maxrequests, fore.maxoperations, fore.maxrequestsize)
    return res


async def op_destroy_session(ctx: CompoundContext, a: SessionIdArgs) -> StatusRes:
    svc = ctx.svc
    s = svc.sessions.get(a.sessionid)
    check_mach_cred(ctx, s.client, Op.DESTROY_SESSION)
    if ctx.session is None and ctx.conn_id is not None and ctx.conn_id not in s.conns:
        # RFC 8881 §18.37.3: without SEQUENCE it must come on a connection bound to it.
        raise Nfs4Error(Stat.CONN_NOT_BOUND_TO_SESSION)
    svc.sessions.destroy(s)
    return _OK


async def op_destroy_clientid(ctx: CompoundContext, a: ClientIdArgs) -> StatusRes:
    svc = ctx.svc
    c = svc.clients.require(a.clientid)
    check_mach_cred(ctx, c, Op.DESTROY_CLIENTID)
    if c.has_state():
        # RFC 8881 §18.50.3: sessions, opens or locks still exist.
        raise Nfs4Error(Stat.CLIENTID_BUSY, "the client id still has sessions, opens or locks")
    svc.clients.destroy(c)
    if svc.recovery is not None:
        # The client said it is done: it may not reclaim after a restart.
        await svc.recovery.client_removed(c.ownerid)
    return _OK


async def op_bind_conn(ctx: CompoundContext, a: BindConnArgs) -> BindConnRes:
    s = ctx.svc.sessions.get(a.sessionid)
    check_mach_cred(ctx, s.client, Op.BIND_CONN_TO_SESSION)
    if a.dir not in {d.value for d in ChannelDirFromClient}:
        raise Nfs4Error(Stat.INVAL, f"channel direction {a.dir}")
    if a.rdma:
        raise Nfs4Error(Stat.INVAL, "RDMA mode is not supported")
    if ctx.conn_id is None:
        raise Nfs4Error(Stat.INVAL, "no connection")
    if a.dir == ChannelDirFromClient.BACK:
        ctx.svc.sessions.bind(s, ctx.conn_id, back=True)
        got = ChannelDirFromServer.BACK
    else:
        # No callbacks yet: FORE_OR_BOTH / BACK_OR_BOTH get the fore channel.
        ctx.svc.sessions.bind(s, ctx.conn_id)
        got = ChannelDirFromServer.FORE
    ctx.svc.sessions.watch(ctx.conn)
    return BindConnRes(0, s.sessionid, got, False)


async def op_reclaim_complete(ctx: CompoundContext, a: ReclaimCompleteArgs) -> StatusRes:
    c = ctx.client
    assert c is not None  # not allowed without SEQUENCE
    check_mach_cred(ctx, c, Op.RECLAIM_COMPLETE)
    if a.one_fs:
        # Per-file-system reclaim (rca_one_fs, RFC 8881 §18.51.3): the file system of the
        # current file handle; it does not end the client's reclaim of the others.
        rec = ctx.svc.recovery
        if rec is not None:
            node = ctx.require_cfh()
            fs = node.export.export_id if node.export is not None else "pseudo"
            d = rec.reclaim_complete(c.ownerid, True, fs)
            if d:
                raise Nfs4Error(int(d))
        return _OK
    if c.reclaim_complete:
        raise Nfs4Error(Stat.COMPLETE_ALREADY)
    c.reclaim_complete = True
    ctx.svc.on_reclaim_complete(c)
    return _OK
