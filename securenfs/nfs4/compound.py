"""The COMPOUND procedure (RFC 8881 §16.2, §2.10.6): one loop, the shared checks, SEQUENCE
and the reply cache.

Operations are decoded one at a time as they are evaluated: a COMPOUND that claims 10,000
operations costs nothing until they are reached, and an operation that cannot be decoded
ends the COMPOUND with NFS4ERR_BADXDR (or NFS4ERR_OP_ILLEGAL / NFS4ERR_NOTSUPP, RFC 8881
§15.2: the arguments of an unknown operation cannot be skipped).
"""

from __future__ import annotations

import logging
import struct
from time import perf_counter

from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.optable import DEFERS_CHECK, OPTABLE, Sec
from securenfs.nfs4.service import Nfs4Service
from securenfs.nfs4.xdr4 import SequenceArgs, SequenceRes, unpack_compound_header
from securenfs.proto.constants import (
    NFS4_MINOR_VERSION,
    Op,
    Stat,
    StateProtect,
    stat_name,
)
from securenfs.proto.errors import Nfs4Error
from securenfs.rpc.auth import Credential, GarbageArgs
from securenfs.state.clients import Client
from securenfs.state.sessions import Replay, Session, Slot
from securenfs.vfs.errors import FsError
from securenfs.vfs.status import nfs_status
from securenfs.xdr import Packer, Unpacker, XdrError

log = logging.getLogger("securenfs.nfs4")
_U32 = struct.Struct(">I")
_OP_SEQ = int(Op.SEQUENCE)
#: SEQUENCE's result in a reply: op number, status and SEQUENCE4resok (RFC 8881 §18.46.2).
_SEQ_RESULT = 8 + 36


def _rpc_overhead(cred: Credential) -> int:
    """Bytes the RPC reply adds around the COMPOUND reply, at most: the accepted-reply header
    with a null verifier (RFC 5531 §9: 24 bytes); under RPCSEC_GSS a Kerberos MIC as the
    verifier and the integrity or privacy wrapping of the body (RFC 2203 §5.3.2, §5.3.3).
    ca_maxresponsesize and ca_maxresponsesize_cached count these too (RFC 8881 §18.36.3)."""
    svc = cred.gss_service
    if svc is None:
        return 24
    return 24 + 64 + (0 if svc == 1 else 48 if svc == 2 else 96)


#: Results whose XDR carries more than the status on error: SETATTR4res always has attrsset.
_ERROR_TAIL: dict[int, bytes] = {Op.SETATTR: _U32.pack(0)}


def _status_only(op: int, status: int) -> bytes:
    """An operation's result that is its status alone, with what its result type carries even
    on error (RFC 8881 §18.30.2: SETATTR4res always holds attrsset)."""
    return _U32.pack(op) + _U32.pack(status) + _ERROR_TAIL.get(op, b"")


def _reply(status: int, tag: bytes, parts: list[bytes | bytearray | memoryview], count: int) -> list[bytes | bytearray | memoryview]:
    h = Packer()
    h.u32(status)
    h.opaque(tag)
    h.u32(count)
    return [h.getvalue(), *parts]


async def compound(svc: Nfs4Service, cred: Credential, peer: str, conn: object, args: memoryview) -> list[bytes | bytearray | memoryview]:
    u = Unpacker(args)
    try:
        hdr = unpack_compound_header(u)
    except XdrError as exc:
        raise GarbageArgs(f"COMPOUND header: {exc}") from None
    if hdr.minorversion != NFS4_MINOR_VERSION:
        # RFC 8881 §16.2.3: nothing is evaluated; clients probing 4.2 fall back to 4.1.
        return _reply(Stat.MINOR_VERS_MISMATCH, hdr.tag, [], 0)
    try:
        hdr.tag.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 8881 §14.2, §16.2.3: the tag is a utf8str_cs; invalid UTF-8 is NFS4ERR_INVAL,
        # and nothing is evaluated.
        return _reply(Stat.INVAL, hdr.tag, [], 0)
    n = hdr.numops
    if n == 0:
        return _reply(Stat.OK, hdr.tag, [], 0)
    ctx = CompoundContext(svc, cred, peer, conn)
    ctx.numops = n
    if u.remaining() < 4:
        return _reply(Stat.BADXDR, hdr.tag, [_status_only(Op.ILLEGAL, Stat.BADXDR)], 1)
    first = _U32.unpack_from(u.buffer, u.pos)[0]
    if first != _OP_SEQ:
        spec = OPTABLE.get(first)
        if spec is None:
            u.u32()
            return _reply(Stat.OP_ILLEGAL, hdr.tag, [_status_only(Op.ILLEGAL, Stat.OP_ILLEGAL)], 1)
        if not spec.alone:
            # RFC 8881 §2.10.6.2: everything else needs a session.
            return _reply(Stat.OP_NOT_IN_SESSION, hdr.tag, [_status_only(first, Stat.OP_NOT_IN_SESSION)], 1)
        if n > 1:
            return _reply(Stat.NOT_ONLY_OP, hdr.tag, [_status_only(first, Stat.NOT_ONLY_OP)], 1)
        status, parts, count = await _evaluate(ctx, u, n, None)
        return _reply(status, hdr.tag, parts, count)

    # -- SEQUENCE ------------------------------------------------------------------------------
    u.u32()
    try:
        sa = SequenceArgs.unpack(u)
    except XdrError:
        return _reply(Stat.BADXDR, hdr.tag, [_status_only(_OP_SEQ, Stat.BADXDR)], 1)
    # Everything around the results counts against the session's reply sizes: the RPC
    # header and the COMPOUND status, tag and count.
    rpc_overhead = _rpc_overhead(cred)
    header = rpc_overhead + 12 + ((len(hdr.tag) + 3) & ~3)
    metrics = svc.metrics
    t0 = perf_counter() if metrics is not None else 0.0
    try:
        session, slot, kind, seqres = _sequence(ctx, sa, n, args, header + _SEQ_RESULT)
    except Nfs4Error as exc:
        if metrics is not None:
            om = metrics.ops[_OP_SEQ]
            om.observe(perf_counter() - t0)
            om.error(exc.status, stat_name)
        level = logging.DEBUG if exc.status in (Stat.SEQ_MISORDERED, Stat.BADSLOT) else logging.INFO
        svc.peerlog.log(log, level, peer, stat_name(exc.status), "%s SEQUENCE: %s", peer, exc)
        return _reply(exc.status, hdr.tag, [_status_only(_OP_SEQ, exc.status)], 1)
    if metrics is not None:
        metrics.ops[_OP_SEQ].observe(perf_counter() - t0)
    if kind == Replay.RETRY:
        # RFC 8881 §2.10.6.1.1: the cached reply, byte for byte; wait for an original still running.
        if slot.pending is not None and not slot.pending.done():
            cached = await slot.pending
        else:
            cached = slot.reply
        if cached is None:
            return _reply(Stat.RETRY_UNCACHED_REP, hdr.tag,
                          [_status_only(_OP_SEQ, Stat.RETRY_UNCACHED_REP)], 1)
        return [cached]
    sp = Packer()
    sp.u32(_OP_SEQ)
    seqres.pack(sp)
    first_part = sp.getvalue()
    reply: list[bytes | bytearray | memoryview]
    used = header + len(first_part)
    try:
        status, parts, count = await _evaluate(ctx, u, n - 1, session, used, sa.cachethis)
        reply = _reply(status, hdr.tag, [first_part, *parts], count + 1)
    except BaseException:
        Session.finish(slot, None)
        raise
    size = sum(len(x) for x in reply)
    if size + rpc_overhead > session.fore.maxresponsesize_cached:
        Session.finish(slot, None)
        return reply
    data = b"".join(reply)
    # Cache every reply that fits ca_maxresponsesize_cached (not only sa_cachethis ones), so
    # a retry after a lost reply gets the same answer instead of a re-execution.
    Session.finish(slot, data)
    return [data]


def _sequence(ctx: CompoundContext, sa: SequenceArgs, numops: int, request: memoryview,
              smallest_reply: int) -> tuple[Session, Slot, int, SequenceRes]:
    svc = ctx.svc
    session = svc.sessions.get(sa.sessionid)
    client = session.client
    ctx.session, ctx.client = session, client
    fore = session.fore
    if numops > fore.maxoperations:
        raise Nfs4Error(Stat.TOO_MANY_OPS, f"{numops} operations, the session allows {fore.maxoperations}")
    reqsize = len(request)
    if reqsize > fore.maxrequestsize:
        raise Nfs4Error(Stat.REQ_TOO_BIG, f"request of {reqsize} bytes, the session allows {fore.maxrequestsize}")
    # Not even the reply to SEQUENCE fits (a long tag, a tiny cache): SEQUENCE answers it, and
    # the slot is not used (RFC 8881 §2.10.6.4).
    if smallest_reply > fore.maxresponsesize:
        raise Nfs4Error(Stat.REP_TOO_BIG, f"a reply of {smallest_reply} bytes at least, the session allows "
                        f"{fore.maxresponsesize}")
    if sa.cachethis and smallest_reply > fore.maxresponsesize_cached:
        raise Nfs4Error(Stat.REP_TOO_BIG_TO_CACHE, f"sa_cachethis with a reply of {smallest_reply} bytes at least, "
                        f"the session caches {fore.maxresponsesize_cached}")
    if sa.highest_slotid >= len(session.slots) and sa.slotid < len(session.slots):
        raise Nfs4Error(Stat.BAD_HIGH_SLOT, f"sa_highest_slotid {sa.highest_slotid}")
    kind, slot = session.begin(sa.slotid, sa.sequenceid, request)
    if kind == Replay.NEW:
        cid = ctx.conn_id
        if cid is not None and cid not in session.conns:
            if client.sp_how != StateProtect.NONE:
                Session.finish(slot, None)
                slot.seqid = (slot.seqid - 1) & 0xFFFFFFFF
                raise Nfs4Error(Stat.CONN_NOT_BOUND_TO_SESSION)
            # SP4_NONE: the connection is bound implicitly (RFC 8881 §2.10.3.1).
            svc.sessions.bind(session, cid)
            svc.sessions.watch(ctx.conn)
        client.renew()
        svc.laundromat.start()
    res = SequenceRes(0, session.sessionid, sa.sequenceid, sa.slotid, session.highest_slotid,
                      session.highest_slotid, _status_flags(svc, client))
    return session, slot, kind, res


def _status_flags(svc: Nfs4Service, client: Client) -> int:
    """sr_status_flags (RFC 8881 §18.46.3): EXPIRED_ALL_STATE_REVOKED while the client has
    revoked stateids it has not freed (the courteous server revokes all of an expired
    client's state at once), ADMIN_STATE_REVOKED for state the admin revoked
    (``securenfs expire``).  Callback bits come with the backchannel."""
    return svc.state.revoked_flags(client.clientid)


async def _evaluate(ctx: CompoundContext, u: Unpacker, n: int, session: Session | None, used: int = 0,
                    cachethis: bool = False) -> tuple[int, list[bytes | bytearray | memoryview], int]:
    """Evaluate ``n`` operations; returns (status of the last, encoded results, count).
    ``used`` is what the reply holds already (headers, the SEQUENCE result): each result must
    fit ca_maxresponsesize (else NFS4ERR_REP_TOO_BIG), and with sa_cachethis
    ca_maxresponsesize_cached (else NFS4ERR_REP_TOO_BIG_TO_CACHE), RFC 8881 §2.10.6.4,
    §15.1.3."""
    parts: list[bytes | bytearray | memoryview] = []
    count = 0
    status = 0
    total = used
    if session is not None:
        max_reply = session.fore.maxresponsesize
        max_cached = session.fore.maxresponsesize_cached
    else:
        max_reply = max_cached = 1 << 30
    buf = u.buffer
    metrics = ctx.svc.metrics
    t0 = 0.0
    for i in range(n):
        ctx.opindex = i + (1 if session is not None else 0)
        if u.remaining() < 4:
            # The op count promised more operations than the request holds.
            parts.append(_status_only(Op.ILLEGAL, Stat.BADXDR))
            return Stat.BADXDR, parts, count + 1
        opnum = u.u32()
        spec = OPTABLE.get(opnum)
        if spec is None:
            parts.append(_status_only(Op.ILLEGAL, Stat.OP_ILLEGAL))
            return Stat.OP_ILLEGAL, parts, count + 1
        if opnum == _OP_SEQ:
            parts.append(_status_only(opnum, Stat.SEQUENCE_POS))
            return Stat.SEQUENCE_POS, parts, count + 1
        if spec.handler is None or spec.args is None:
            parts.append(_status_only(opnum, Stat.NOTSUPP))
            return Stat.NOTSUPP, parts, count + 1
        try:
            args = spec.args.unpack(u)  # type: ignore[attr-defined]
        except XdrError as exc:
            ctx.svc.peerlog.log(log, logging.INFO, ctx.peer, "BADXDR", "%s %s: undecodable arguments: %s",
                                ctx.peer, spec.op.name, exc)
            parts.append(_status_only(opnum, Stat.BADXDR))
            return Stat.BADXDR, parts, count + 1
        if metrics is not None:
            t0 = perf_counter()
        try:
            if spec.needs_fh and ctx.cfh is None:
                raise Nfs4Error(Stat.NOFILEHANDLE)
            sec = spec.sec
            if sec is Sec.CHECK and not ctx.cfh_checked:
                await ctx.check_cfh()
            res = await spec.handler(ctx, args)
            if sec is Sec.PUTFH:
                # RFC 8881 §2.6.3.1.1: a put-filehandle op is checked now unless the next op
                # decides (LOOKUP, SECINFO, another put, SAVEFH, ...) or it is unknown.
                nxt = _U32.unpack_from(buf, u.pos)[0] if i + 1 < n and u.remaining() >= 4 else None
                if nxt is None or (nxt not in DEFERS_CHECK and nxt in OPTABLE):
                    await ctx.check_cfh()
            elif sec is Sec.LOOKUP or sec is Sec.LOOKUPP:
                if not ctx.cfh_checked:
                    await ctx.check_cfh()
        except Nfs4Error as exc:
            # Some errors carry a result body (LOCK4denied with NFS4ERR_DENIED).
            res = exc.result
            status = exc.status
            _log_status(ctx, spec.op, exc)
        except FsError as exc:
            # A check of the file-system layer run in the operation itself (component names).
            res = None
            status = nfs_status(exc)
            _log_status(ctx, spec.op, Nfs4Error(status, str(exc)))
        except Exception:
            ctx.svc.peerlog.log(log, logging.ERROR, ctx.peer, "SERVERFAULT", "%s %s: server fault", ctx.peer,
                                spec.op.name, exc_info=True)
            res = None
            status = Stat.SERVERFAULT
        if res is None:
            chunks: list[bytes | bytearray | memoryview] = [_status_only(opnum, status)]
            size = len(chunks[0])
        else:
            p = Packer()
            p.u32(opnum)
            res.pack(p)
            # Big buffers (READ data) stay separate chunks: no copy on the way out.
            chunks = p.chunks()
            size = len(p)
            status = getattr(res, "status", 0)
        if metrics is not None:
            om = metrics.ops[opnum]
            om.observe(perf_counter() - t0)
            if status:
                om.error(status, stat_name)
        if total + size > max_reply:
            parts.append(_status_only(opnum, Stat.REP_TOO_BIG))
            return Stat.REP_TOO_BIG, parts, count + 1
        if cachethis and total + size > max_cached:
            parts.append(_status_only(opnum, Stat.REP_TOO_BIG_TO_CACHE))
            return Stat.REP_TOO_BIG_TO_CACHE, parts, count + 1
        total += size
        parts.extend(chunks)
        count += 1
        if status:
            return status, parts, count
    return status, parts, count


_QUIET = frozenset({Stat.NOENT, Stat.NOT_SAME, Stat.SAME, Stat.EXIST, Stat.DENIED, Stat.SHARE_DENIED})


def _log_status(ctx: CompoundContext, op: Op, exc: Nfs4Error) -> None:
    level = logging.DEBUG if exc.status in _QUIET else logging.INFO
    if log.isEnabledFor(level):
        ctx.svc.peerlog.log(log, level, ctx.peer, stat_name(exc.status), "%s %s %s: %s", ctx.peer,
                            ctx.cred.describe(), op.name, exc)


