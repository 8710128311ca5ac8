"""GETATTR, VERIFY, NVERIFY and ACCESS (RFC 8881 §18.7, §18.30, §18.15, §18.1)."""

from __future__ import annotations

import dataclasses
import os

from securenfs.nfs4 import fattr
from securenfs.nfs4.acls import aces_of
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.fattr import ACL_ATTRS, ObjInfo
from securenfs.nfs4.namespace import Node
from securenfs.nfs4.xdr4 import AccessArgs, AccessRes, BitmapArgs, FattrArgs, GetattrRes, StatusRes
from securenfs.proto.constants import ACCESS4_ALL, Access4, Attr, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs import acls as vfs_acls
from securenfs.vfs.creds import FsCreds
from securenfs.vfs.protocol import FileSystem


async def op_getattr(ctx: CompoundContext, a: BitmapArgs) -> GetattrRes:
    node = ctx.require_cfh()
    fattr.check_readable(a.mask)
    attrs = fattr.wanted(a.mask)
    obj = await obj_info(ctx, node, attrs)
    return GetattrRes(0, fattr.encode(obj, attrs))


async def _same(ctx: CompoundContext, a: FattrArgs) -> bool:
    theirs = fattr.decode(a.attrs)
    if Attr.RDATTR_ERROR in theirs:
        raise Nfs4Error(Stat.INVAL, "rdattr_error cannot be verified")  # RFC 8881 §18.30.3
    node = ctx.require_cfh()
    attrs = sorted(theirs)
    obj = await obj_info(ctx, node, attrs)
    ours = fattr.decode(fattr.encode(obj, attrs))
    return ours == theirs


async def op_verify(ctx: CompoundContext, a: FattrArgs) -> StatusRes:
    if not await _same(ctx, a):
        raise Nfs4Error(Stat.NOT_SAME)
    return StatusRes(0)


async def op_nverify(ctx: CompoundContext, a: FattrArgs) -> StatusRes:
    if await _same(ctx, a):
        raise Nfs4Error(Stat.SAME)
    return StatusRes(0)


async def op_access(ctx: CompoundContext, a: AccessArgs) -> AccessRes:
    node = ctx.require_cfh()
    mask = a.access & ACCESS4_ALL
    if node.pnode is not None:
        # Pseudo directories are read-only and searchable by everyone who may see them.
        return AccessRes(0, mask, mask & (Access4.READ | Access4.LOOKUP))
    assert node.export is not None and node.fs is not None
    acc = await ctx.access_for(node.export)
    creds = await ctx.creds_for(node.export)
    granted = await ctx.run_meta(_access, node.fs, node.fh, creds, mask, acc.read_only)
    return AccessRes(0, mask, granted & mask)


def _access(fs: FileSystem, fh: bytes, creds: FsCreds, mask: int, ro: bool) -> int:
    return fs.access(fh, creds, mask, read_only=ro)


#: Attributes that need a statvfs of the file system.
_VFS_ATTRS = frozenset({Attr.SPACE_AVAIL, Attr.SPACE_FREE, Attr.SPACE_TOTAL, Attr.FILES_AVAIL,
                        Attr.FILES_FREE, Attr.FILES_TOTAL})


async def obj_info(ctx: CompoundContext, node: Node, attrs: list[int]) -> ObjInfo:
    """Everything GETATTR needs for ``node`` (one pool hop for a file)."""
    svc = ctx.svc
    want_acl = any(a in ACL_ATTRS for a in attrs)
    access = default = None
    if node.pnode is not None:
        p = node.pnode
        obj = ObjInfo(svc.ns.pseudo_stat(p), node.fh, svc.ns.pseudo_fs, p.node_id, fileid=p.node_id)
    else:
        assert node.export is not None and node.fs is not None
        need_vfs = any(a in _VFS_ATTRS for a in attrs)
        fresh = ctx.fresh_stat
        if want_acl:
            # The ACL is read as the caller, with the stat it belongs to.
            stored = await ctx.run_meta(vfs_acls.read, node.fs, node.fh, await ctx.creds_for(node.export))
            st, access, default = stored.st, stored.access, stored.default
            vfs = await ctx.run(node.fs.statvfs, node.fh) if need_vfs else None
        elif fresh is not None and not need_vfs and fresh[0] is node and fresh[1] == ctx.opindex - 1:
            # LOOKUP then GETATTR (every path walk): the object was stat'ed by the
            # operation just before this one, so no second open by handle.
            st, vfs = fresh[2], None
        else:
            st, vfs = await ctx.run_meta(_stat, node.fs, node.fh, need_vfs)
        fsinfo = svc.ns.fsinfo(node.export)
        if vfs is not None:
            fsinfo = dataclasses.replace(fsinfo, statvfs=vfs)
        mounted_on = st.st_ino
        if Attr.MOUNTED_ON_FILEID in attrs and node.fs.is_root(node.fh):
            mounted_on = svc.ns.table.junction(node.export).node_id
        obj = ObjInfo(st, node.fh, fsinfo, mounted_on)
    if want_acl:
        obj.acl = await aces_of(svc.owners, obj.st.st_mode, access, default)
    if Attr.OWNER in attrs:
        obj.owner = await svc.owners.uid_to_owner(obj.st.st_uid)
    if Attr.OWNER_GROUP in attrs:
        obj.group = await svc.owners.gid_to_group(obj.st.st_gid)
    return obj


def _stat(fs: FileSystem, fh: bytes, need_vfs: bool) -> tuple[os.stat_result, os.statvfs_result | None]:
    st = fs.stat(fh)
    return st, (fs.statvfs(fh) if need_vfs else None)
