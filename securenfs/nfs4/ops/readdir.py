"""READDIR and READLINK (RFC 8881 §18.23, §18.24)."""

from __future__ import annotations

import dataclasses

from securenfs.nfs4 import fattr
from securenfs.nfs4.acls import aces_of
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.fattr import ObjInfo
from securenfs.nfs4.ops.attrs import obj_info
from securenfs.nfs4.xdr4 import (
    Fattr,
    ReaddirArgs,
    ReaddirRes,
    ReadlinkRes,
    VoidArgs,
    pack_dir_entry,
)
from securenfs.proto.constants import Attr, Stat
from securenfs.proto.errors import Nfs4Error, status_from_errno
from securenfs.vfs import acls as vfs_acls
from securenfs.xdr import Packer

_ZERO_VERF = b"\0" * 8
#: READDIR4resok bytes besides the entries: cookieverf, end-of-list marker, eof.
_FIXED = 8 + 4 + 4
#: Entries fetched from the file system per batch.
_BATCH = 512
_NO_ATTRS = Fattr([], b"")


def _entry_size(name: bytes, attrs: Fattr) -> int:
    return 4 + 8 + 4 + len(name) + (-len(name) & 3) + 4 + 4 * len(attrs.mask) + 4 + len(attrs.vals) + (-len(attrs.vals) & 3)


async def op_readdir(ctx: CompoundContext, a: ReaddirArgs) -> ReaddirRes:
    node = ctx.require_cfh()
    fattr.check_readable(a.mask)
    attrs = fattr.wanted(a.mask)
    if a.cookie in (1, 2):
        raise Nfs4Error(Stat.BAD_COOKIE, "cookies 1 and 2 are reserved")
    budget = a.maxcount - _FIXED
    dir_budget = a.dircount if a.dircount else None
    p = Packer()
    count = 0
    used = 0
    dir_used = 0
    svc = ctx.svc

    def add(cookie: int, name: bytes, f: Fattr) -> bool:
        nonlocal used, dir_used, count
        size = _entry_size(name, f)
        dsize = 8 + 4 + len(name) + (-len(name) & 3)
        if used + size > budget or (count and dir_budget is not None and dir_used + dsize > dir_budget):
            return False
        pack_dir_entry(p, cookie, name, f)
        used += size
        dir_used += dsize
        count += 1
        return True

    if node.pnode is not None:
        verf = _ZERO_VERF
        eof = True
        for child in node.pnode.sorted_children():
            if child.node_id <= a.cookie:
                continue
            if not await ctx.run_maybe(svc.ns.table.visible, child, ctx.peer):
                continue
            f = _NO_ATTRS
            if attrs:
                f = await _attrs_or_error(ctx, svc.ns.for_pseudo(child), attrs, child.node_id)
            if not add(child.node_id, child.name.encode(), f):
                eof = False
                break
    else:
        assert node.export is not None and node.fs is not None
        creds = await ctx.creds_for(node.export)
        cookie = a.cookie
        client_verf = None
        if cookie and a.cookieverf != _ZERO_VERF:
            client_verf = int.from_bytes(a.cookieverf, "big")
        fs = node.fs
        fsinfo = svc.ns.fsinfo(node.export)
        need_vfs = any(x in _VFS_ATTRS for x in attrs)
        statvfs = await ctx.run(fs.statvfs, node.fh) if need_vfs else None
        if statvfs is not None:
            fsinfo = dataclasses.replace(fsinfo, statvfs=statvfs)
        want_owner = Attr.OWNER in attrs
        want_group = Attr.OWNER_GROUP in attrs
        want_err = Attr.RDATTR_ERROR in attrs
        want_acl = any(x in fattr.ACL_ATTRS for x in attrs)
        verf_int = 0
        eof = False
        full = False
        while not full:
            entries, fs_eof, verf_int = await ctx.run(_readdir, fs, node.fh, cookie, creds, _BATCH, client_verf,
                                                      bool(attrs))
            client_verf = verf_int if cookie else client_verf
            for e in entries:
                name = e.name.encode("utf-8", "surrogateescape")
                if not attrs:
                    f = _NO_ATTRS
                elif e.error is not None or e.stat is None or e.fh is None:
                    st = status_from_errno(e.error)
                    if not want_err:
                        raise Nfs4Error(st, f"attributes of {e.name!r}")
                    f = fattr.encode_error_only(st)
                else:
                    obj = ObjInfo(e.stat, e.fh, fsinfo, e.stat.st_ino)
                    if want_owner:
                        obj.owner = await svc.owners.uid_to_owner(e.stat.st_uid)
                    if want_group:
                        obj.group = await svc.owners.gid_to_group(e.stat.st_gid)
                    if want_acl:
                        stored = await ctx.run(vfs_acls.read, fs, e.fh, creds)
                        obj.acl = await aces_of(svc.owners, stored.st.st_mode, stored.access, stored.default)
                    f = fattr.encode(obj, attrs)
                if not add(e.cookie, name, f):
                    full = True
                    break
                cookie = e.cookie
            else:
                if fs_eof:
                    eof = True
                    break
                if not entries:
                    break
        verf = verf_int.to_bytes(8, "big")
    if count == 0 and not eof:
        raise Nfs4Error(Stat.TOOSMALL, f"maxcount {a.maxcount} cannot hold one entry")
    return ReaddirRes(0, verf, [], eof, p.getvalue())


_VFS_ATTRS = frozenset({Attr.SPACE_AVAIL, Attr.SPACE_FREE, Attr.SPACE_TOTAL, Attr.FILES_AVAIL,
                        Attr.FILES_FREE, Attr.FILES_TOTAL})


def _readdir(fs, fh, cookie, creds, n, verifier, with_attrs):  # type: ignore[no-untyped-def]
    return fs.readdir(fh, cookie, creds, n, verifier=verifier, with_attrs=with_attrs)


async def _attrs_or_error(ctx: CompoundContext, node, attrs: list[int], fileid: int) -> Fattr:  # type: ignore[no-untyped-def]
    try:
        obj = await obj_info(ctx, node, attrs)
    except Nfs4Error as exc:
        if Attr.RDATTR_ERROR in attrs:
            return fattr.encode_error_only(exc.status)
        raise
    return fattr.encode(obj, attrs)


async def op_readlink(ctx: CompoundContext, a: VoidArgs) -> ReadlinkRes:
    node = ctx.require_cfh()
    if node.export is None or node.fs is None:
        raise Nfs4Error(Stat.INVAL, "READLINK of a directory")
    creds = await ctx.creds_for(node.export)
    return ReadlinkRes(0, await ctx.run(node.fs.readlink, node.fh, creds))
