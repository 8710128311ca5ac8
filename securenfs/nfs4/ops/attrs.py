"""GETATTR, VERIFY, NVERIFY and ACCESS (RFC 8881 §18.7, §18.30, §18.15, §18.1)."""

from __future__ import annotations

from securenfs.nfs4 import fattr
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.xdr4 import AccessArgs, AccessRes, BitmapArgs, FattrArgs, GetattrRes, StatusRes
from securenfs.proto.constants import ACCESS4_ALL, Access4, Attr, Stat
from securenfs.proto.errors import Nfs4Error


async def op_getattr(ctx: CompoundContext, a: BitmapArgs) -> GetattrRes:
    node = ctx.require_cfh()
    fattr.check_readable(a.mask)
    attrs = fattr.wanted(a.mask)
    obj = await ctx.svc.obj_info(ctx, node, attrs)
    return GetattrRes(0, fattr.encode(obj, attrs))


async def _same(ctx: CompoundContext, a: FattrArgs) -> bool:
    theirs = fattr.decode(a.attrs)
    if Attr.RDATTR_ERROR in theirs:
        raise Nfs4Error(Stat.INVAL, "rdattr_error cannot be verified")  # RFC 8881 §18.30.3
    node = ctx.require_cfh()
    attrs = sorted(theirs)
    obj = await ctx.svc.obj_info(ctx, node, attrs)
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


def _access(fs, fh, creds, mask, ro):  # type: ignore[no-untyped-def]
    return fs.access(fh, creds, mask, read_only=ro)
