"""OPEN's claim types by their RFC numbers: the arguments are built with the types generated
from RFC 5662 (securenfs/proto/xdr41.py), not with the project's hand-written client types."""

from __future__ import annotations

import asyncio
from typing import Any

from securenfs.nfs4.xdr4 import FhArgs, VoidArgs
from securenfs.proto import xdr41 as g
from securenfs.proto.constants import Op, Stat
from tests.support.nfsserver import NfsServer, mounted_client


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def _open(owner: g.state_owner4, claim: g.open_claim4) -> g.OPEN4args:
    return g.OPEN4args(0, g.OPEN4_SHARE_ACCESS_READ, g.OPEN4_SHARE_DENY_NONE, owner,
                       g.openflag4(g.OPEN4_NOCREATE), claim)


def test_filehandle_delegation_claims_by_their_rfc_numbers(state_server: NfsServer) -> None:
    # RFC 8881 §18.16.1 (open_claim_type4): CLAIM_DELEG_CUR_FH = 5 carries the delegation
    # stateid, CLAIM_DELEG_PREV_FH = 6 carries nothing.  No delegation is ever granted here, so
    # the first is answered NFS4ERR_BAD_STATEID and the second NFS4ERR_NOTSUPP (docs/nfs4.md).
    async def main() -> None:
        c, root = await mounted_client(state_server)
        f = await c.open(root, "claimed", create=True)
        await c.close_file(f)
        owner = g.state_owner4(c.clientid, b"claims")
        cur = _open(owner, g.open_claim4(g.CLAIM_DELEG_CUR_FH, oc_delegate_stateid=g.stateid4(1, b"\x07" * 12)))
        r = await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)), (Op.OPEN, cur), (Op.GETFH, VoidArgs())])
        assert (r.status, r.results[-1][0]) == (Stat.BAD_STATEID, Op.OPEN)
        prev = _open(owner, g.open_claim4(g.CLAIM_DELEG_PREV_FH))
        r = await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)), (Op.OPEN, prev), (Op.GETFH, VoidArgs())])
        assert (r.status, r.results[-1][0]) == (Stat.NOTSUPP, Op.OPEN)
        # the same client still opens by CLAIM_FH (value 4) in the next request
        ok = _open(owner, g.open_claim4(g.CLAIM_FH))
        r = await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)), (Op.OPEN, ok), (Op.GETFH, VoidArgs())])
        assert r.status == Stat.OK
        assert r.results[-1][1].fh == f.fh

    run(main())
