"""File handle and name-space walking operations (RFC 8881 §18.19-18.22, §18.13-18.14,
§18.27, §18.28, §18.8).  The security check of §2.6.3.1 is done by the COMPOUND loop from
the op table; handlers only move the handles."""

from __future__ import annotations

from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.namespace import Node
from securenfs.nfs4.xdr4 import FhArgs, GetFhRes, NameArgs, StatusRes, VoidArgs
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs.names import check_name

_OK = StatusRes(0)


async def op_putfh(ctx: CompoundContext, a: FhArgs) -> StatusRes:
    ctx.set_cfh(ctx.svc.ns.resolve(a.fh))
    return _OK


async def op_putrootfh(ctx: CompoundContext, a: VoidArgs) -> StatusRes:
    # PUTPUBFH: the public file handle is the root of the pseudo file system (RFC 8881 §18.20).
    ctx.set_cfh(ctx.svc.ns.root())
    return _OK


async def op_getfh(ctx: CompoundContext, a: VoidArgs) -> GetFhRes:
    return GetFhRes(0, ctx.require_cfh().fh)


async def op_savefh(ctx: CompoundContext, a: VoidArgs) -> StatusRes:
    ctx.sfh = ctx.require_cfh()
    ctx.sfh_checked = ctx.cfh_checked
    return _OK


async def op_restorefh(ctx: CompoundContext, a: VoidArgs) -> StatusRes:
    if ctx.sfh is None:
        raise Nfs4Error(Stat.RESTOREFH, "no saved file handle")
    # Like a put-filehandle op, RESTOREFH is checked again (RFC 8881 §2.6.3.1.1).
    ctx.set_cfh(ctx.sfh)
    return _OK


async def op_lookup(ctx: CompoundContext, a: NameArgs) -> StatusRes:
    cfh = ctx.require_cfh()
    name = check_name(a.name)
    ns = ctx.svc.ns
    if cfh.pnode is not None:
        child = cfh.pnode.children.get(name)
        if child is None:
            raise Nfs4Error(Stat.NOENT, f"no {name!r} in pseudo directory {cfh.pnode.path}")
        ctx.set_cfh(ns.for_pseudo(child))
        return _OK
    assert cfh.export is not None and cfh.fs is not None
    # Inside an export the looked-up object has the directory's policy: check before the
    # lookup, so a refused flavor learns nothing about which names exist.
    if not ctx.cfh_checked:
        await ctx.check(cfh)
    creds = await ctx.creds_for(cfh.export)
    fh, st = await ctx.run_meta(cfh.fs.lookup, cfh.fh, name, creds)
    node = Node(fh, cfh.export, None, cfh.fs)
    ctx.set_cfh(node, checked=True)
    ctx.fresh_stat = (node, ctx.opindex, st)
    return _OK


async def op_lookupp(ctx: CompoundContext, a: VoidArgs) -> StatusRes:
    cfh = ctx.require_cfh()
    ns = ctx.svc.ns
    if cfh.pnode is not None:
        parent = cfh.pnode.parent
        if parent is None:
            raise Nfs4Error(Stat.NOENT, "the pseudo root has no parent")
        ctx.set_cfh(ns.for_pseudo(parent))
        return _OK
    assert cfh.export is not None and cfh.fs is not None
    creds = await ctx.creds_for(cfh.export)
    pfh = await ctx.run_meta(cfh.fs.lookupp, cfh.fh, creds)
    if pfh is None:
        node = ns.parent_of_export_root(cfh.export)
        if node is None:
            raise Nfs4Error(Stat.NOENT, "the export is the root of the name space")
        ctx.set_cfh(node)
    else:
        ctx.set_cfh(Node(pfh, cfh.export, None, cfh.fs))
    return _OK
