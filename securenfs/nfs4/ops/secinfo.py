"""SECINFO and SECINFO_NO_NAME (RFC 8881 §18.29, §18.45): the answer comes from the same
SecPolicy that decides NFS4ERR_WRONGSEC, in the export's order.  Both consume the current
file handle (§2.6.3.1.1.5) and never answer WRONGSEC themselves."""

from __future__ import annotations

from securenfs.exports.secpolicy import SecInfo
from securenfs.exports.table import Export, PseudoNode
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.xdr4 import NameArgs, SecinfoNoNameArgs
from securenfs.proto.constants import SecinfoStyle, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.proto.xdr41 import (
    NFS4_OK,
    RPCSEC_GSS,
    SECINFO4res,
    rpc_gss_svc_t,
    rpcsec_gss_info,
    secinfo4,
)
from securenfs.vfs.names import check_name


def _entry(s: SecInfo) -> secinfo4:
    if s.flavor != RPCSEC_GSS:
        return secinfo4(s.flavor)
    return secinfo4(s.flavor, rpcsec_gss_info(s.oid or b"", s.qop or 0, rpc_gss_svc_t(s.service or 0)))


def answer(ctx: CompoundContext, target: Export | PseudoNode) -> SECINFO4res:
    res = SECINFO4res(NFS4_OK, [_entry(s) for s in ctx.svc.ns.policy.secinfo(target)])
    ctx.cfh = None
    ctx.cfh_checked = False
    return res


async def op_secinfo(ctx: CompoundContext, a: NameArgs) -> SECINFO4res:
    cfh = ctx.require_cfh()
    name = check_name(a.name)
    if cfh.pnode is not None:
        child = cfh.pnode.children.get(name)
        if child is None or not await ctx.run_maybe(ctx.svc.ns.table.visible, child, ctx.peer):
            raise Nfs4Error(Stat.NOENT, f"no {name!r} in pseudo directory {cfh.pnode.path}")
        return answer(ctx, child.export if child.export is not None else child)
    assert cfh.export is not None and cfh.fs is not None
    creds = await ctx.creds_for(cfh.export)
    await ctx.run(cfh.fs.lookup, cfh.fh, name, creds)  # the name must exist (NOENT otherwise)
    return answer(ctx, cfh.export)


async def op_secinfo_no_name(ctx: CompoundContext, a: SecinfoNoNameArgs) -> SECINFO4res:
    cfh = ctx.require_cfh()
    ns = ctx.svc.ns
    if a.style == SecinfoStyle.CURRENT_FH:
        return answer(ctx, cfh.target)
    if cfh.pnode is not None:
        parent = cfh.pnode.parent
        if parent is None:
            raise Nfs4Error(Stat.NOENT, "the pseudo root has no parent")
        return answer(ctx, parent.export if parent.export is not None else parent)
    assert cfh.export is not None and cfh.fs is not None
    if cfh.fs.is_root(cfh.fh):
        up = ns.parent_of_export_root(cfh.export)
        if up is None:
            raise Nfs4Error(Stat.NOENT, "the export is the root of the name space")
        return answer(ctx, up.target)
    return answer(ctx, cfh.export)
