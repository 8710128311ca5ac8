"""SETATTR, CREATE, REMOVE, RENAME and LINK (RFC 8881 §18.30, §18.4, §18.25, §18.26, §18.9).

change_info4 carries the directory's change attribute (ctime in nanoseconds, the same value
GETATTR reports) read just before and just after the change; ``atomic`` is false because
another change may land between the two reads.
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any

from securenfs.locking.stateids import special_kind
from securenfs.nfs4 import acls, fattr
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.namespace import Node
from securenfs.nfs4.ops.io import _io_fd
from securenfs.nfs4.ops.state import lookup_state, same_file, stateid_of
from securenfs.nfs4.xdr4 import (
    ChangeInfo,
    CinfoRes,
    CreateArgs,
    CreateRes,
    NameArgs,
    RenameArgs,
    RenameRes,
    SetattrArgs,
    SetattrRes,
)
from securenfs.proto.constants import Attr, FType, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs import fileops
from securenfs.vfs.names import check_name

#: Attributes SETATTR changes; other supported ones are read-only (NFS4ERR_INVAL).
SETTABLE = frozenset({Attr.SIZE, Attr.MODE, Attr.OWNER, Attr.OWNER_GROUP, Attr.TIME_ACCESS_SET,
                      Attr.TIME_MODIFY_SET, Attr.ACL, Attr.DACL})
#: Linux device numbers: 12 bits of major and 20 of minor (the kernel's 32-bit dev_t).
_MAX_MAJOR = (1 << 12) - 1
_MAX_MINOR = (1 << 20) - 1
#: Times are handed to the kernel as signed 64-bit nanoseconds since the epoch.
_NS_MIN, _NS_MAX = -(1 << 63), (1 << 63) - 1


def _settime(attrs: dict[int, Any], attr: Attr) -> tuple[int | None] | None:
    """A settime4 attribute as the 1-tuple FileSystem.setattr takes: None when absent,
    (None,) for the server's time, (nanoseconds,) for the client's.

    nfstime4 is well-formed XDR for any int64 seconds, but a time the kernel cannot hold is
    an invalid argument (RFC 8881 §15.1.1.4, NFS4ERR_INVAL), not a server fault."""
    t = attrs.get(attr, ...)
    if t is ...:
        return None
    if t is None:
        return (None,)
    ns = t[0] * 1_000_000_000 + t[1]
    if not _NS_MIN <= ns <= _NS_MAX:
        raise Nfs4Error(Stat.INVAL, f"{attr.name} of {t[0]} seconds is outside the range the file system holds")
    return (ns,)


def _rdev(spec: tuple[int, int]) -> int:
    """specdata4 -> dev_t; NFS4ERR_INVAL for numbers a Linux device cannot have (RFC 8881
    §15.1.1.4: arguments that match the XDR but are not valid)."""
    major, minor = spec
    if major > _MAX_MAJOR or minor > _MAX_MINOR:
        raise Nfs4Error(Stat.INVAL, f"device {major}:{minor} is outside major 0-{_MAX_MAJOR}, minor 0-{_MAX_MINOR}")
    return os.makedev(major, minor)


def _export_node(node: Node) -> tuple[Any, Any]:
    if node.pnode is not None or node.export is None or node.fs is None:
        raise Nfs4Error(Stat.ROFS, "the pseudo file system cannot be changed")
    return node.export, node.fs


async def _writable(ctx: CompoundContext, node: Node) -> tuple[Any, Any, Any]:
    export, fs = _export_node(node)
    if await ctx.read_only(export):
        raise Nfs4Error(Stat.ROFS, f"{export.pseudo} is exported read-only")
    return export, fs, await ctx.creds_for(export)


async def _owner_ids(ctx: CompoundContext, attrs: dict[int, Any]) -> tuple[int | None, int | None]:
    """owner / owner_group strings -> ids through the owner mapper (idmap);
    NFS4ERR_BADOWNER for a name it cannot map (RFC 8881 §5.9)."""
    owners = ctx.svc.owners
    kerberos = ctx.cred.principal is not None
    uid = gid = None
    if Attr.OWNER in attrs:
        uid = await owners.owner_to_uid(attrs[Attr.OWNER], kerberos=kerberos)
        if uid is None:
            raise Nfs4Error(Stat.BADOWNER, f"owner {attrs[Attr.OWNER]!r} cannot be mapped")
    if Attr.OWNER_GROUP in attrs:
        gid = await owners.group_to_gid(attrs[Attr.OWNER_GROUP], kerberos=kerberos)
        if gid is None:
            raise Nfs4Error(Stat.BADOWNER, f"group {attrs[Attr.OWNER_GROUP]!r} cannot be mapped")
    return uid, gid


async def op_setattr(ctx: CompoundContext, a: SetattrArgs) -> SetattrRes:
    node = ctx.require_cfh()
    attrs = fattr.decode(a.attrs, allow_write_only=True)
    for at in attrs:
        if at not in SETTABLE:
            raise Nfs4Error(Stat.INVAL, f"attribute {Attr(at).name} is read-only")
    _export, fs, creds = await _writable(ctx, node)
    uid, gid = await _owner_ids(ctx, attrs)
    new_acl = None
    aces = acls.requested(attrs)
    if aces is not None:
        st = await ctx.run_meta(fs.stat, node.fh)
        if stat_mod.S_ISLNK(st.st_mode):
            raise Nfs4Error(Stat.INVAL, "a symbolic link has no ACL")
        new_acl = await acls.prepare(ctx, aces, stat_mod.S_ISDIR(st.st_mode))
    done: list[int] = []
    if Attr.SIZE in attrs:
        size = int(attrs[Attr.SIZE])
        if size > fattr.MAX_FILE_SIZE:
            raise Nfs4Error(Stat.FBIG, f"size {size}")
        st = await ctx.run(fs.stat, node.fh)
        if stat_mod.S_ISDIR(st.st_mode):
            raise Nfs4Error(Stat.ISDIR, "size of a directory")
        if not stat_mod.S_ISREG(st.st_mode):
            raise Nfs4Error(Stat.INVAL, "size of a special file")
        # The size goes through the stateid like a WRITE (RFC 8881 §18.30.3): share
        # reservations and open modes apply.
        _n, key, opener = await _io_fd(ctx, a.stateid, True)
        await ctx.run(_truncate, ctx.svc.state.fds, key, opener, size)
        done.append(Attr.SIZE)
    elif special_kind(stateid_of(ctx, a.stateid)) is None:
        # A real stateid with other attributes must still be valid (§18.30.3).
        same_file(ctx, lookup_state(ctx, a.stateid, None))
    mode = attrs.get(Attr.MODE)
    atime = _settime(attrs, Attr.TIME_ACCESS_SET)
    mtime = _settime(attrs, Attr.TIME_MODIFY_SET)
    if mode is not None or uid is not None or gid is not None or atime is not None or mtime is not None:
        await ctx.run(fs.setattr, node.fh, creds, mode, uid, gid, atime, mtime)
    if new_acl is not None:
        # RFC 8881 §6.4.1.3: with both, the mode is applied first and the ACL after it, so
        # the mode's permission bits end up derived from the ACL.
        await acls.store(ctx, fs, node.fh, creds, new_acl)
    done += [x for x in attrs if x != Attr.SIZE]
    return SetattrRes(0, fattr.set_to_bitmap(done))


def _truncate(cache: Any, key: Any, opener: Any, size: int) -> None:
    with cache.use(*key, opener) as fd:
        fileops.truncate(fd, size)


async def op_create(ctx: CompoundContext, a: CreateArgs) -> CreateRes:
    node = ctx.require_cfh()
    name = check_name(a.name)
    export, fs, creds = await _writable(ctx, node)
    attrs = fattr.decode(a.attrs, allow_write_only=True)
    for at in attrs:
        if at not in SETTABLE or at == Attr.SIZE:
            raise Nfs4Error(Stat.INVAL, f"attribute {at} cannot be set by CREATE")
    mode = int(attrs.get(Attr.MODE, 0o755 if a.objtype == FType.DIR else 0o644)) & 0o7777
    rdev = 0
    if a.objtype == FType.DIR:
        kind = "dir"
    elif a.objtype == FType.LNK:
        kind = "link"
        if not a.linkdata or b"\0" in a.linkdata:
            raise Nfs4Error(Stat.INVAL, "empty symbolic link text or NUL inside")
    elif a.objtype in (FType.BLK, FType.CHR, FType.SOCK, FType.FIFO):
        if not export.allow_devices:
            raise Nfs4Error(Stat.PERM, f"{export.pseudo} does not allow creating devices, sockets or FIFOs "
                            "(allow_devices = false)")
        kind = "node"
        mode |= {FType.BLK: stat_mod.S_IFBLK, FType.CHR: stat_mod.S_IFCHR, FType.SOCK: stat_mod.S_IFSOCK,
                 FType.FIFO: stat_mod.S_IFIFO}[FType(a.objtype)]
        rdev = _rdev(a.spec) if a.objtype in (FType.BLK, FType.CHR) else 0
    elif a.objtype == FType.REG:
        raise Nfs4Error(Stat.BADTYPE, "regular files are created with OPEN")
    else:
        raise Nfs4Error(Stat.BADTYPE, f"object type {a.objtype}")
    atime, mtime = _settime(attrs, Attr.TIME_ACCESS_SET), _settime(attrs, Attr.TIME_MODIFY_SET)
    aces = acls.requested(attrs)
    if aces is not None and kind == "link":
        raise Nfs4Error(Stat.INVAL, "a symbolic link has no ACL")
    new_acl = None if aces is None else await acls.prepare(ctx, aces, kind == "dir")
    fh, before, after = await ctx.run(fs.create_obj, node.fh, name, creds, kind, mode, a.linkdata, rdev)
    uid, gid = await _owner_ids(ctx, attrs)
    if new_acl is not None:
        await acls.store(ctx, fs, fh, creds, new_acl)
    rest = {k: v for k, v in attrs.items() if k not in (Attr.MODE, Attr.ACL, Attr.DACL)}
    if rest and kind != "link":
        await ctx.run(fs.setattr, fh, creds, None, uid, gid, atime, mtime)
    ctx.set_cfh(Node(fh, export, None, fs), checked=True)
    ctx.stateid = None
    return CreateRes(0, ChangeInfo(False, before, after), fattr.set_to_bitmap(list(attrs)))


async def op_remove(ctx: CompoundContext, a: NameArgs) -> CinfoRes:
    node = ctx.require_cfh()
    name = check_name(a.name)
    _export, fs, creds = await _writable(ctx, node)
    before, after = await ctx.run(fs.remove, node.fh, name, creds)
    return CinfoRes(0, ChangeInfo(False, before, after))


async def _saved(ctx: CompoundContext) -> Node:
    if ctx.sfh is None:
        raise Nfs4Error(Stat.NOFILEHANDLE, "no saved file handle (SAVEFH first)")
    if not ctx.sfh_checked:
        await ctx.check(ctx.sfh)
        ctx.sfh_checked = True
    return ctx.sfh


async def op_rename(ctx: CompoundContext, a: RenameArgs) -> RenameRes:
    src = await _saved(ctx)
    dst = ctx.require_cfh()
    old, new = check_name(a.oldname), check_name(a.newname)
    sexp, _sfs = _export_node(src)
    export, fs, creds = await _writable(ctx, dst)
    if sexp.export_id != export.export_id:
        raise Nfs4Error(Stat.XDEV, "RENAME between exports")
    sb, sa, tb, ta = await ctx.run(fs.rename, src.fh, old, dst.fh, new, creds)
    return RenameRes(0, ChangeInfo(False, sb, sa), ChangeInfo(False, tb, ta))


async def op_link(ctx: CompoundContext, a: NameArgs) -> CinfoRes:
    src = await _saved(ctx)
    dst = ctx.require_cfh()
    name = check_name(a.name)
    sexp, _sfs = _export_node(src)
    export, fs, creds = await _writable(ctx, dst)
    if sexp.export_id != export.export_id:
        raise Nfs4Error(Stat.XDEV, "LINK between exports")
    before, after = await ctx.run(fs.link, src.fh, dst.fh, name, creds)
    return CinfoRes(0, ChangeInfo(False, before, after))
