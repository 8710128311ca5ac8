"""Program 100003 version 4: NULL (answered by the transport) and COMPOUND."""

from __future__ import annotations

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

    async def call(self, call: RpcCall, auth: Authenticated) -> Buffers:
        raise ProcUnavail(call.proc)
