"""Program 100003 version 4: NULL (answered by the transport) and COMPOUND."""

from __future__ import annotations

from securenfs.nfs4.compound import compound
from securenfs.nfs4.service import Nfs4Service
from securenfs.rpc.auth import Authenticated, Buffers
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.rpc.message import RpcCall
from securenfs.rpc.transport import ProcUnavail

PROC_NULL = 0
PROC_COMPOUND = 1


class Nfs4Program:
    prog = NFS_PROGRAM
    low_version = NFS_V4
    high_version = NFS_V4

    def __init__(self, service: Nfs4Service | None = None):
        self.service = service

    async def call(self, call: RpcCall, auth: Authenticated) -> Buffers:
        if call.proc != PROC_COMPOUND:
            raise ProcUnavail(call.proc)
        svc = self.service
        if svc is None:
            raise ProcUnavail(call.proc)
        conn = call.conn
        peer = conn.peer[0] if conn is not None else "?"
        return await compound(svc, auth.cred, peer, conn, auth.args)
