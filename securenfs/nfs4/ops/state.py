"""OPEN, CLOSE, OPEN_DOWNGRADE, TEST_STATEID, FREE_STATEID, LOCK, LOCKT, LOCKU
(RFC 8881 §18.16, §18.2, §18.18, §18.48, §18.38, §18.10-18.12; state model §8, §9).

NFSv4.1 ignores the seqid fields of OPEN, CLOSE, OPEN_DOWNGRADE, LOCK and LOCKU (sessions
give exactly-once semantics, RFC 8881 §8.13); the stateid seqids are checked instead.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable
from typing import Any

from securenfs.locking.locks import LockConflict
from securenfs.locking.locks import LockDenied as LockConflictError
from securenfs.locking.shares import validate_share
from securenfs.locking.stateids import INVALID, Special, Stateid, StateKind, resolve_current
from securenfs.nfs4 import acls, fattr
from securenfs.nfs4.context import CompoundContext, CurrentStateid
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
from securenfs.proto.constants import Attr, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.state.opens import LockState, NeedLockFd, OpenState
from securenfs.vfs import fileops
from securenfs.vfs.errors import FsError
from securenfs.vfs.names import check_name

_ZERO_OTHER = bytes(12)
_ONE = b"\x00\x00\x00\x01"
_ACCFLAGS = {1: os.O_RDONLY, 2: os.O_WRONLY, 3: os.O_RDWR}
_LOCK = frozenset({StateKind.LOCK})


def accflags(access: int) -> int:
    return _ACCFLAGS[access & 3]


def client_id(ctx: CompoundContext) -> int:
    assert ctx.client is not None  # state ops are never allowed without SEQUENCE
    return ctx.client.clientid


def set_current(ctx: CompoundContext, raw: bytes) -> bytes:
    """Make ``raw`` the current stateid (on the current file handle); returns ``raw``."""
    ctx.stateid = CurrentStateid(raw, ctx.cfh)
    return raw


def current_stateid(ctx: CompoundContext) -> bytes | None:
    cur = ctx.stateid
    if cur is None or cur.node is not ctx.cfh:
        return None
    return cur.raw


def stateid_of(ctx: CompoundContext, raw: bytes) -> Stateid:
    """The stateid argument, with the current-stateid marker (seqid 1, other zero) replaced
    by the COMPOUND's current stateid (NFS4ERR_BAD_STATEID when there is none)."""
    if raw[4:] == _ZERO_OTHER and raw[:4] == _ONE:
        return resolve_current(raw, current_stateid(ctx))
    return Stateid.unpack(raw)


def lookup_state(ctx: CompoundContext, raw: bytes, kinds: frozenset[StateKind] | None) -> Any:
    """The open or lock state ``raw`` names, for the current file handle's file."""
    return ctx.svc.state.lookup(client_id(ctx), stateid_of(ctx, raw), kinds, ctx.require_cfh().fh)


def same_file(ctx: CompoundContext, st: OpenState | LockState) -> None:
    node = ctx.require_cfh()
    if node.fh != st.file.fh:
        raise Nfs4Error(Stat.BAD_STATEID, "the stateid is for another file than the current file handle")


# -- OPEN ---------------------------------------------------------------------------------------

async def op_open(ctx: CompoundContext, a: OpenArgs) -> OpenRes:
    # RFC 8881 §18.16.3: "the server MUST ignore the clientid field" of the open_owner4;
    # the owner belongs to the session's client.
    cid = client_id(ctx)
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
    if ctx.client is not None and not ctx.client.recorded:
        await ctx.svc.record_state_holder(ctx.client)
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
    new_acl = None
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
                Attr.SIZE, Attr.MODE, Attr.OWNER, Attr.OWNER_GROUP, Attr.ACL, Attr.DACL}
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
                verifier_ns = fileops.verifier_to_ns(a.verifier)
            aces = acls.requested(attrs)
            if aces is not None:
                new_acl = await acls.prepare(ctx, aces, False)
        # Opening an existing file is metadata work (lookup, permission check, open): it
        # runs where GETATTR does; a create writes to the directory and goes to the pool.
        run = ctx.run if create else ctx.run_meta
        opened = await run(_open_name, node.fs, node.fh, name, creds, create, exclusive,
                           accflags(access), mode, verifier_ns)
        fd = opened.fd
        cinfo = ChangeInfo(False, opened.before, opened.after)
        if opened.created and new_acl is not None:
            try:
                await acls.store(ctx, node.fs, opened.fh, creds, new_acl)
            except BaseException:
                if fd is not None:
                    os.close(fd)
                raise
            attrset.append(Attr.ACL if Attr.ACL in attrs else Attr.DACL)
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
    return OpenRes(0, set_current(ctx, st.stateid()), cinfo, OPEN4_RESULT_LOCKTYPE_POSIX, fattr.set_to_bitmap(attrset))


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
    """Non-reclaim OPEN and LOCK: NFS4ERR_GRACE while grace runs, since they could take what
    a recorded client is about to reclaim (RFC 8881 §8.4.2.1; in a cluster until every node's
    grace ends), and from a client that has not sent RECLAIM_COMPLETE (§18.51.3: "If
    non-reclaim locking operations are done before the RECLAIM_COMPLETE, an NFS4ERR_GRACE
    error will be returned")."""
    rec = ctx.svc.recovery
    if rec is None:
        return
    assert ctx.client is not None
    if rec.grace.check_new_state(ctx.client.reclaim_complete):
        why = ("grace period, only reclaims are accepted" if rec.grace.enforcing
               else "the client has not sent RECLAIM_COMPLETE")
        raise Nfs4Error(Stat.GRACE, f"{what}: {why}")


def _open_name(fs: Any, dfh: bytes, name: str, creds: Any, create: bool, exclusive: bool, acc: int, mode: int,
               verifier_ns: int | None) -> fileops.Opened:
    return fileops.open_name(fs, dfh, name, creds, create=create, exclusive=exclusive, accflags=acc, mode=mode,
                           verifier_ns=verifier_ns)


async def _grant(ctx: CompoundContext, cid: int, owner_name: bytes, fnode: Node, creds: Any, access: int, deny: int,
                 fd: int | None, size: int | None) -> OpenState:
    """Share check, descriptor and state, serialized per file (RFC 8881 §9.7)."""
    mgr = ctx.svc.state
    async with mgr.serialized(fnode.fh):
        mgr.check_open(cid, owner_name, fnode.fh, access, deny)
        key = ((fnode.fh, creds), accflags(access))
        assert fnode.fs is not None
        if fd is not None:
            # The descriptor OPEN's file-system step opened as the caller (or that created
            # the file, which may write a mode-0444 file): no second pool call.
            if size is not None:
                await ctx.run(fileops.truncate, fd, size)
            st, _new = mgr.open(cid, owner_name, fnode.fh, access, deny, fnode, creds)
            mgr.fds.adopt(*key, fd)  # the cache owns the descriptor from here on
            return st
        # Opening as the caller is the permission check of OPEN.
        await ctx.run(_touch_fd, mgr.fds, key, fnode.fs, fnode.fh, accflags(access), creds, size)
        st, _new = mgr.open(cid, owner_name, fnode.fh, access, deny, fnode, creds)
        return st


def _touch_fd(cache: Any, key: Any, fs: Any, fh: bytes, acc: int, creds: Any, size: int | None) -> bool:
    # Opened as the caller on every OPEN, even when a descriptor is cached: that is OPEN's
    # permission check, and a descriptor from an earlier OPEN says nothing about the
    # permissions now (a chmod or a new ACL may have taken them away).
    cache.adopt(*key, fileops.open_fh(fs, fh, acc, creds))
    if size is not None:
        with cache.use(*key, lambda: fileops.open_fh(fs, fh, acc, creds)) as fd:
            fileops.truncate(fd, size)
    return True


# -- CLOSE, OPEN_DOWNGRADE ----------------------------------------------------------------------

async def op_close(ctx: CompoundContext, a: CloseArgs) -> StateidRes:
    ctx.svc.state.close(client_id(ctx), stateid_of(ctx, a.stateid), ctx.require_cfh().fh)
    # RFC 8881 §18.2.4: 4.1 servers return the special invalid stateid.
    return StateidRes(0, set_current(ctx, INVALID.pack()))


async def op_open_downgrade(ctx: CompoundContext, a: OpenDowngradeArgs) -> StateidRes:
    st = ctx.svc.state.open_downgrade(client_id(ctx), stateid_of(ctx, a.stateid), ctx.require_cfh().fh,
                                      a.share_access, a.share_deny)
    return StateidRes(0, set_current(ctx, st.stateid()))


# -- TEST_STATEID, FREE_STATEID ---------------------------------------------------------------

async def op_test_stateid(ctx: CompoundContext, a: TestStateidArgs) -> TestStateidRes:
    return TestStateidRes(0, ctx.svc.state.test_stateids(client_id(ctx), a.stateids))


async def op_free_stateid(ctx: CompoundContext, a: StateidArgs) -> StatusRes:
    ctx.svc.state.free_stateid(client_id(ctx), stateid_of(ctx, a.stateid))
    return StatusRes(0)


# -- LOCK, LOCKT, LOCKU ---------------------------------------------------------------------------

def _denied(r: LockConflict) -> Nfs4Error:
    # NFS4ERR_DENIED carries LOCK4denied: the conflicting range, type and owner (§18.10.2).
    return Nfs4Error(Stat.DENIED, f"conflicts with {r.locktype.name} at {r.offset} length {r.length:#x} "
                                  f"of client {r.clientid:#018x}",
                     result=LockRes(Stat.DENIED, denied=LockDenied(
                         r.offset, r.length, int(r.locktype), StateOwner(r.clientid, r.owner))))


async def _lock_fd(ctx: CompoundContext, writable: bool) -> int:
    """A descriptor of the current file for the kernel's byte-range locks (in the pool: on a
    cluster file system an open can wait on the network)."""
    node = ctx.require_cfh()
    if node.fs is None:
        raise Nfs4Error(Stat.ISDIR, "pseudo directory")
    return await ctx.run(_open_lock_fd, node.fs, node.fh, writable)


def _open_lock_fd(fs: Any, fh: bytes, writable: bool) -> int:
    try:
        return int(fs.open_for_locks(fh, writable))
    except FsError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            # The process is out of descriptors: a shortage the client waits out
            # (EAGAIN -> NFS4ERR_DELAY), never a failed LOCK.
            raise FsError(errno.EAGAIN, f"no descriptor for the lock: {exc.strerror}") from None
        raise


async def _with_lock_fd(ctx: CompoundContext, call: Callable[[int | None], LockState]) -> LockState:
    """``call(kfd)`` is one StateManager.lock; when it asks for a lock descriptor
    (NeedLockFd), open one in the pool and call again with it (the state manager owns it
    from then on)."""
    try:
        return call(None)
    except NeedLockFd as need:
        kfd = await _lock_fd(ctx, need.writable)
    try:
        return call(kfd)
    except NeedLockFd:
        # The owner's descriptor changed while this one was opened.
        raise Nfs4Error(Stat.DELAY, "the lock descriptor changed while it was opened; try again") from None


async def op_lock(ctx: CompoundContext, a: LockArgs) -> LockRes:
    cid = client_id(ctx)
    if a.reclaim:
        _check_reclaim(ctx, "LOCK reclaim")
    else:
        _check_new_state(ctx, "LOCK")
    fh = ctx.require_cfh().fh
    try:
        if a.new_lock_owner:
            assert a.lock_owner is not None
            # RFC 8881 §18.10.3: the clientid in lock_owner4 is ignored; the session names
            # the client.
            owner, open_sid = a.lock_owner.owner, stateid_of(ctx, a.open_stateid)
            ls = await _with_lock_fd(ctx, lambda kfd: ctx.svc.state.lock(
                cid, fh, a.locktype, a.offset, a.length, open_sid=open_sid, lock_owner=owner, kfd=kfd))
        else:
            lock_sid = stateid_of(ctx, a.lock_stateid)
            ls = await _with_lock_fd(ctx, lambda kfd: ctx.svc.state.lock(
                cid, fh, a.locktype, a.offset, a.length, lock_sid=lock_sid, kfd=kfd))
    except LockConflictError as exc:
        if a.reclaim:
            # RFC 8881 §15.1.9.5: a reclaim that conflicts with a lock taken while the
            # server was down (here: by a process outside NFS during grace).
            raise Nfs4Error(Stat.RECLAIM_CONFLICT, f"reclaim refused: {exc}") from None
        raise _denied(exc.conflict) from None
    if a.reclaim:
        _note_reclaim(ctx)
    return LockRes(0, set_current(ctx, ls.stateid()))


async def op_lockt(ctx: CompoundContext, a: LocktArgs) -> LocktRes:
    cid = client_id(ctx)
    node = ctx.require_cfh()
    if node.pnode is not None:
        raise Nfs4Error(Stat.ISDIR, "pseudo directory")
    # RFC 8881 §18.11.3: the clientid in lock_owner4 is ignored, as for LOCK.
    # During grace the answer could be wrong: locks not yet reclaimed are missing.  LOCKT
    # takes no lock, so RECLAIM_COMPLETE does not matter here.
    rec = ctx.svc.recovery
    if rec is not None and rec.grace.enforcing:
        raise Nfs4Error(Stat.GRACE, "LOCKT: grace period, only reclaims are accepted")
    try:
        try:
            ctx.svc.state.lockt(cid, node.fh, a.locktype, a.offset, a.length, a.owner.owner)
        except NeedLockFd:
            # No NFS lock descriptor of the file to ask the kernel through: a short-lived one.
            fd = await _lock_fd(ctx, False)
            try:
                ctx.svc.state.lockt(cid, node.fh, a.locktype, a.offset, a.length, a.owner.owner, kfd=fd)
            finally:
                os.close(fd)
    except LockConflictError as exc:
        raise _denied(exc.conflict) from None
    return LocktRes(0, has_stateid=False)


async def op_locku(ctx: CompoundContext, a: LockuArgs) -> StateidRes:
    ls = ctx.svc.state.locku(client_id(ctx), stateid_of(ctx, a.stateid), ctx.require_cfh().fh, a.locktype,
                             a.offset, a.length)
    return StateidRes(0, set_current(ctx, ls.stateid()))


__all__ = ["READW_LT", "Special"]
