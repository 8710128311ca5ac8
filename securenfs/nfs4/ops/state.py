"""OPEN, CLOSE, OPEN_DOWNGRADE, TEST_STATEID, FREE_STATEID, LOCK, LOCKT, LOCKU
(RFC 8881 §18.16, §18.2, §18.18, §18.48, §18.38, §18.10-18.12; state model §8, §9).

NFSv4.1 ignores the seqid fields of OPEN, CLOSE, OPEN_DOWNGRADE, LOCK and LOCKU (sessions
give exactly-once semantics, RFC 8881 §8.13); the stateid seqids are checked instead.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any

from securenfs.locking.locks import LockConflict, LockType, lock_range
from securenfs.locking.shares import achievable, check_open, validate_share
from securenfs.locking.stateids import (
    INVALID,
    Special,
    Stateid,
    StateKind,
    next_seqid,
    resolve_current,
    special_kind,
)
from securenfs.nfs4 import fattr, fsops
from securenfs.nfs4.constants import Attr, Stat
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.errors import Nfs4Error
from securenfs.nfs4.names import check_name
from securenfs.nfs4.namespace import Node
from securenfs.nfs4.xdr4 import (
    CLAIM_DELEG_CUR_FH,
    CLAIM_DELEG_PREV_FH,
    CLAIM_DELEGATE_CUR,
    CLAIM_DELEGATE_PREV,
    CLAIM_FH,
    CLAIM_NULL,
    CLAIM_PREVIOUS,
    EXCLUSIVE4,
    EXCLUSIVE4_1,
    GUARDED4,
    OPEN4_CREATE,
    OPEN4_RESULT_LOCKTYPE_POSIX,
    READW_LT,
    WRITE_LT,
    WRITEW_LT,
    ChangeInfo,
    CloseArgs,
    LockArgs,
    LockDenied,
    LockRes,
    LocktArgs,
    LocktRes,
    LockuArgs,
    OpenArgs,
    OpenDowngradeArgs,
    OpenRes,
    StateidArgs,
    StateidRes,
    StateOwner,
    StatusRes,
    TestStateidArgs,
    TestStateidRes,
)
from securenfs.state.opens import LockState, OpenState

_ACCFLAGS = {1: os.O_RDONLY, 2: os.O_WRONLY, 3: os.O_RDWR}
_OPEN = frozenset({StateKind.OPEN})
_LOCK = frozenset({StateKind.LOCK})


def accflags(access: int) -> int:
    return _ACCFLAGS[access & 3]


def client_id(ctx: CompoundContext) -> int:
    assert ctx.client is not None  # state ops are never allowed without SEQUENCE
    return ctx.client.clientid


def stateid_of(ctx: CompoundContext, raw: bytes) -> Stateid:
    return resolve_current(raw, ctx.stateid)


def lookup_state(ctx: CompoundContext, raw: bytes, kinds: frozenset[StateKind] | None) -> Any:
    sid = stateid_of(ctx, raw)
    if special_kind(sid) is not None:
        raise Nfs4Error(Stat.BAD_STATEID, "a special stateid cannot be used here")
    return ctx.svc.state.table.lookup(client_id(ctx), sid, kinds)


def same_file(ctx: CompoundContext, st: OpenState | LockState) -> None:
    node = ctx.require_cfh()
    if node.fh != st.file.fh:
        raise Nfs4Error(Stat.BAD_STATEID, "the stateid is for another file than the current file handle")


# -- OPEN ---------------------------------------------------------------------------------------

async def op_open(ctx: CompoundContext, a: OpenArgs) -> OpenRes:
    cid = client_id(ctx)
    if a.owner.clientid != cid:
        raise Nfs4Error(Stat.INVAL, "open_owner carries another client id than the session's")
    access, deny = validate_share(a.share_access, a.share_deny)
    reclaim = a.claim == CLAIM_PREVIOUS
    if reclaim:
        _check_reclaim(ctx, "OPEN CLAIM_PREVIOUS")
        if a.claim_deleg_type != 0:
            # No delegation is ever granted, so none can be reclaimed.
            raise Nfs4Error(Stat.RECLAIM_BAD, "no delegation was granted before the restart")
        if a.opentype == OPEN4_CREATE:
            raise Nfs4Error(Stat.INVAL, "CLAIM_PREVIOUS cannot create")
    elif a.claim in (CLAIM_NULL, CLAIM_FH):
        _check_new_state(ctx, "OPEN")
    if a.claim in (CLAIM_DELEGATE_CUR, CLAIM_DELEG_CUR_FH):
        raise Nfs4Error(Stat.BAD_STATEID, "no delegation was granted")
    if a.claim in (CLAIM_DELEGATE_PREV, CLAIM_DELEG_PREV_FH):
        raise Nfs4Error(Stat.NOTSUPP, "delegation reclaim after a client restart is not supported")
    node = ctx.require_cfh()
    if not ctx.cfh_checked:
        await ctx.check(node)
        ctx.cfh_checked = True
    if node.pnode is not None:
        if a.claim == CLAIM_NULL:
            raise Nfs4Error(Stat.ROFS if a.opentype == OPEN4_CREATE else Stat.NOENT, "pseudo directory")
        raise Nfs4Error(Stat.ISDIR, "a pseudo directory cannot be opened")
    assert node.export is not None and node.fs is not None
    creds = await ctx.creds_for(node.export)
    create = a.opentype == OPEN4_CREATE
    if (create or access & 2) and await ctx.read_only(node.export):
        raise Nfs4Error(Stat.ROFS, f"{node.export.pseudo} is exported read-only")
    attrset: list[int] = []
    size: int | None = None
    fd: int | None = None
    cinfo = ChangeInfo()
    if a.claim == CLAIM_NULL:
        name = check_name(a.name)
        mode = 0o644
        verifier_ns: int | None = None
        exclusive = create and a.createmode in (GUARDED4, EXCLUSIVE4, EXCLUSIVE4_1)
        if create:
            attrs = fattr.decode(a.createattrs) if a.createmode != EXCLUSIVE4 else {}
            allowed = set(fattr.EXCLCREAT_ATTRS) if a.createmode == EXCLUSIVE4_1 else {
                Attr.SIZE, Attr.MODE, Attr.OWNER, Attr.OWNER_GROUP}
            for at in attrs:
                if at not in allowed:
                    raise Nfs4Error(Stat.INVAL if at in fattr.SUPPORTED else Stat.ATTRNOTSUPP,
                                    f"attribute {at} cannot be set at create")
            if Attr.MODE in attrs:
                mode = int(attrs[Attr.MODE]) & 0o7777
                attrset.append(Attr.MODE)
            if Attr.SIZE in attrs:
                size = int(attrs[Attr.SIZE])
                if size != 0:
                    raise Nfs4Error(Stat.INVAL, "only size 0 can be set by OPEN")
            if a.createmode in (EXCLUSIVE4, EXCLUSIVE4_1):
                verifier_ns = fsops.verifier_to_ns(a.verifier)
        opened = await ctx.run(_open_name, node.fs, node.fh, name, creds, create, exclusive,
                               accflags(access), mode, verifier_ns)
        fd = opened.fd
        cinfo = ChangeInfo(False, opened.before, opened.after)
        if opened.created and verifier_ns is not None:
            attrset += [Attr.TIME_ACCESS, Attr.TIME_MODIFY]
        if not opened.created and size is not None:
            attrset.append(Attr.SIZE)
        elif opened.created:
            size = None
            if Attr.SIZE in (fattr.decode(a.createattrs) if a.createmode != EXCLUSIVE4 else {}):
                attrset.append(Attr.SIZE)
        fnode = Node(opened.fh, node.export, None, node.fs)
        fmode = opened.st.st_mode
    elif a.claim in (CLAIM_FH, CLAIM_PREVIOUS):
        # CLAIM_PREVIOUS names the file by the current file handle too (RFC 8881 §18.16.3).
        if create:
            raise Nfs4Error(Stat.INVAL, "CLAIM_FH cannot create")
        fnode = node
        fmode = (await ctx.run(node.fs.stat, node.fh)).st_mode
    else:
        raise Nfs4Error(Stat.INVAL, f"open claim type {a.claim}")
    try:
        if stat_mod.S_ISDIR(fmode):
            raise Nfs4Error(Stat.ISDIR, "OPEN of a directory")
        if stat_mod.S_ISLNK(fmode):
            raise Nfs4Error(Stat.SYMLINK, "OPEN of a symbolic link")
        if not stat_mod.S_ISREG(fmode):
            raise Nfs4Error(Stat.WRONG_TYPE, "OPEN of a special file")
        st = await _grant(ctx, cid, a.owner.owner, fnode, creds, access, deny, fd, size)
        fd = None
        if reclaim:
            _note_reclaim(ctx)
    finally:
        if fd is not None:
            os.close(fd)
    ctx.set_cfh(fnode, checked=True)
    ctx.stateid = st.stateid()
    return OpenRes(0, ctx.stateid, cinfo, OPEN4_RESULT_LOCKTYPE_POSIX, fattr.set_to_bitmap(attrset))


def _check_reclaim(ctx: CompoundContext, what: str) -> None:
    """OPEN CLAIM_PREVIOUS and LOCK reclaim=true (RFC 8881 §8.4.2.1, §18.16.3, §18.10.3):
    only in grace, only from a client recorded before the restart, only before its
    RECLAIM_COMPLETE."""
    rec = ctx.svc.recovery
    if rec is None:
        raise Nfs4Error(Stat.NO_GRACE, f"{what} outside a grace period")
    assert ctx.client is not None
    d = rec.grace.check_reclaim(ctx.client.ownerid, ctx.client.reclaim_complete)
    if d:
        why = {int(Stat.NO_GRACE): "no grace period for this client (it ended, or RECLAIM_COMPLETE was sent)",
               int(Stat.RECLAIM_BAD): "this client was not recorded before the restart"}.get(int(d), "")
        raise Nfs4Error(int(d), f"{what}: {why}")


def _note_reclaim(ctx: CompoundContext) -> None:
    rec = ctx.svc.recovery
    if rec is not None:
        assert ctx.client is not None
        rec.grace.note_reclaim(ctx.client.ownerid)


def _check_new_state(ctx: CompoundContext, what: str) -> None:
    """Non-reclaim OPEN and LOCK during grace could take what a recorded client is about to
    reclaim (RFC 8881 §8.4.2.1): NFS4ERR_GRACE until grace ends (in a cluster: until every
    node's grace ends)."""
    rec = ctx.svc.recovery
    if rec is not None and rec.grace.enforcing:
        raise Nfs4Error(Stat.GRACE, f"{what}: grace period, only reclaims are accepted")


def _open_name(fs: Any, dfh: bytes, name: str, creds: Any, create: bool, exclusive: bool, acc: int, mode: int,
               verifier_ns: int | None) -> fsops.Opened:
    return fsops.open_name(fs, dfh, name, creds, create=create, exclusive=exclusive, accflags=acc, mode=mode,
                           verifier_ns=verifier_ns)


async def _grant(ctx: CompoundContext, cid: int, owner_name: bytes, fnode: Node, creds: Any, access: int, deny: int,
                 fd: int | None, size: int | None) -> OpenState:
    """Share check, descriptor and state, serialized per file (RFC 8881 §9.7)."""
    mgr = ctx.svc.state
    owner = mgr.open_owner(cid, owner_name)
    f = mgr.file(fnode.fh)
    f.users += 1  # keep the record while waiting for the mutex
    try:
        async with f.mutex:
            existing = mgr.find_open(owner, fnode.fh)
            want_a = access | (existing.access if existing else 0)
            want_d = deny | (existing.deny if existing else 0)
            if f.shares.conflicts(existing or owner, want_a, want_d):
                holders = f.shares.conflicting_holders(existing, want_a, want_d)
                if mgr.courteous_break(holders):
                    pass  # the expired holders' state is gone: check again below
            check_open(f.shares, existing, want_a, want_d)
            key = ((fnode.fh, creds), accflags(access))
            assert fnode.fs is not None
            if fd is not None:
                # Adopt the descriptor that created the file (it may write a mode-0444 file).
                created_fd = fd
                with mgr.fds.use(*key, lambda: created_fd):
                    pass
            else:
                # Opening as the caller is the permission check of OPEN.
                with_fd = await ctx.run(_touch_fd, mgr.fds, key, fnode.fs, fnode.fh, accflags(access), creds, size)
                del with_fd
            if existing is not None:
                mgr.upgrade(existing, access, deny)
                return existing
            return mgr.new_open(owner, f, fnode, creds, access, deny)
    finally:
        mgr._release_file(f)


def _touch_fd(cache: Any, key: Any, fs: Any, fh: bytes, acc: int, creds: Any, size: int | None) -> bool:
    with cache.use(*key, lambda: fsops.open_fh(fs, fh, acc, creds)) as fd:
        if size is not None:
            fsops.truncate(fd, size)
    return True


# -- CLOSE, OPEN_DOWNGRADE ----------------------------------------------------------------------

async def op_close(ctx: CompoundContext, a: CloseArgs) -> StateidRes:
    st: OpenState = lookup_state(ctx, a.stateid, _OPEN)
    same_file(ctx, st)
    mgr = ctx.svc.state
    if mgr.holds_locks(st):
        raise Nfs4Error(Stat.LOCKS_HELD, "byte-range locks of this open are still held (LOCKU them first)")
    mgr.close(st)
    # RFC 8881 §18.2.4: 4.1 servers return the special invalid stateid.
    ctx.stateid = INVALID.pack()
    return StateidRes(0, ctx.stateid)


async def op_open_downgrade(ctx: CompoundContext, a: OpenDowngradeArgs) -> StateidRes:
    st: OpenState = lookup_state(ctx, a.stateid, _OPEN)
    same_file(ctx, st)
    access, deny = validate_share(a.share_access, a.share_deny)
    if access & ~st.access or deny & ~st.deny or not achievable((access, deny), st.history):
        raise Nfs4Error(Stat.INVAL, f"access {access:#x}/deny {deny:#x} is not a union of this owner's OPENs")
    ctx.svc.state.downgrade(st, access, deny)
    ctx.stateid = st.stateid()
    return StateidRes(0, ctx.stateid)


# -- TEST_STATEID, FREE_STATEID ---------------------------------------------------------------

async def op_test_stateid(ctx: CompoundContext, a: TestStateidArgs) -> TestStateidRes:
    cid = client_id(ctx)
    table = ctx.svc.state.table
    codes = []
    for raw in a.stateids:
        sid = Stateid.unpack(raw)
        if special_kind(sid) is not None:
            codes.append(int(Stat.BAD_STATEID))
            continue
        codes.append(int(table.status(cid, sid)[0]))
    return TestStateidRes(0, codes)


async def op_free_stateid(ctx: CompoundContext, a: StateidArgs) -> StatusRes:
    cid = client_id(ctx)
    mgr = ctx.svc.state
    sid = stateid_of(ctx, a.stateid)
    if special_kind(sid) is not None:
        raise Nfs4Error(Stat.BAD_STATEID, "special stateid")
    st = mgr.table.get(sid.other)
    if st is None or st.clientid != cid:
        status, _ = mgr.table.status(cid, sid)
        raise Nfs4Error(status or Stat.BAD_STATEID, f"stateid {sid}")
    if st.revoked:
        mgr.free_revoked(cid, sid.other)
        return StatusRes(0)
    status, _ = mgr.table.status(cid, sid)
    if status:
        raise Nfs4Error(status, f"stateid {sid}")
    if isinstance(st, LockState) and not st.file.locks.has_locks(st.owner.key):
        mgr.free_lock(st)
        return StatusRes(0)
    # An open stateid, or a lock stateid with locks: RFC 8881 §18.38.3.
    raise Nfs4Error(Stat.LOCKS_HELD, "the stateid still holds an open or locks")


# -- LOCK, LOCKT, LOCKU ---------------------------------------------------------------------------

def _is_write(locktype: int) -> bool:
    return locktype in (WRITE_LT, WRITEW_LT)


def _denied(r: LockConflict) -> Nfs4Error:
    exc = Nfs4Error(Stat.DENIED, f"conflicts with {r.locktype.name} at {r.offset} length {r.length:#x} "
                                 f"of client {r.clientid:#018x}")
    # NFS4ERR_DENIED carries LOCK4denied: the conflicting range, type and owner (§18.10.2).
    exc.result = LockRes(Stat.DENIED, denied=LockDenied(  # type: ignore[attr-defined]
        r.offset, r.length, int(r.locktype), StateOwner(r.clientid, r.owner)))
    return exc


async def op_lock(ctx: CompoundContext, a: LockArgs) -> LockRes:
    cid = client_id(ctx)
    mgr = ctx.svc.state
    if a.reclaim:
        _check_reclaim(ctx, "LOCK reclaim")
    else:
        _check_new_state(ctx, "LOCK")
    start, end = lock_range(a.offset, a.length)
    write = _is_write(a.locktype)
    if a.new_lock_owner:
        assert a.lock_owner is not None
        op: OpenState = lookup_state(ctx, a.open_stateid, _OPEN)
        same_file(ctx, op)
        if a.lock_owner.clientid != cid:
            raise Nfs4Error(Stat.INVAL, "lock_owner carries another client id than the session's")
        owner = mgr.lock_owner(cid, a.lock_owner.owner)
        ls = mgr.lock_state(owner, op)
    else:
        ls = lookup_state(ctx, a.lock_stateid, _LOCK)
        same_file(ctx, ls)
        op = ls.open
    if write and not op.access & 2:
        raise Nfs4Error(Stat.OPENMODE, "a write lock needs an open for writing")
    if not write and not op.access & 1:
        raise Nfs4Error(Stat.OPENMODE, "a read lock needs an open for reading")
    f = ls.file
    lt = LockType(a.locktype).base
    async with f.mutex:
        r = f.locks.test(ls.owner.key, start, end, lt)
        if r is not None and mgr.courteous_break(list(f.locks.conflicts(ls.owner.key, start, end, lt))):
            r = f.locks.test(ls.owner.key, start, end, lt)
        if r is not None:
            raise _denied(r)
        if ls.revoked:
            raise Nfs4Error(int(ls.revoked), "the lock state was revoked")
        f.locks.lock(ls.owner.key, start, end, lt)
        ls.seqid = next_seqid(ls.seqid)
    if a.reclaim:
        _note_reclaim(ctx)
    ctx.stateid = ls.stateid()
    return LockRes(0, ctx.stateid)


async def op_lockt(ctx: CompoundContext, a: LocktArgs) -> LocktRes:
    cid = client_id(ctx)
    mgr = ctx.svc.state
    node = ctx.require_cfh()
    if node.pnode is not None:
        raise Nfs4Error(Stat.ISDIR, "pseudo directory")
    start, end = lock_range(a.offset, a.length)
    if a.owner.clientid != cid:
        raise Nfs4Error(Stat.INVAL, "lock_owner carries another client id than the session's")
    # During grace the answer could be wrong: locks not yet reclaimed are missing.
    _check_new_state(ctx, "LOCKT")
    f = mgr.files.get(node.fh)
    if f is None:
        return LocktRes(0, has_stateid=False)
    key = (cid, a.owner.owner)
    lt = LockType(a.locktype).base
    r = f.locks.test(key, start, end, lt)
    if r is not None and mgr.courteous_break(list(f.locks.conflicts(key, start, end, lt))):
        r = f.locks.test(key, start, end, lt)
    if r is not None:
        raise _denied(r)
    return LocktRes(0, has_stateid=False)


async def op_locku(ctx: CompoundContext, a: LockuArgs) -> StateidRes:
    ls: LockState = lookup_state(ctx, a.stateid, _LOCK)
    same_file(ctx, ls)
    start, end = lock_range(a.offset, a.length)
    async with ls.file.mutex:
        ls.file.locks.unlock(ls.owner.key, start, end)
        ls.seqid = next_seqid(ls.seqid)
    ctx.stateid = ls.stateid()
    return StateidRes(0, ctx.stateid)


__all__ = ["READW_LT", "Special"]
