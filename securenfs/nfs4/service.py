"""The NFSv4.1 service: the server's protocol state and the parts the ops share."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Executor
from typing import Any

from securenfs.exports.table import Export
from securenfs.nfs4.constants import Attr, Stat
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.errors import status_from_errno
from securenfs.nfs4.fattr import FsInfo, ObjInfo
from securenfs.nfs4.namespace import Namespace, Node
from securenfs.nfs4.owners import NumericOwners, OwnerMapper
from securenfs.nfs4.xdr4 import ImplId
from securenfs.state.clients import Client, ClientTable
from securenfs.state.sessions import ServerLimits, SessionTable
from securenfs.vfs.errors import BadCookie, BadName, CookieVerifierMismatch, FsError
from securenfs.vfs.handles import BadHandle

log = logging.getLogger("securenfs.nfs4")

_VFS_ATTRS = frozenset({Attr.SPACE_AVAIL, Attr.SPACE_FREE, Attr.SPACE_TOTAL, Attr.FILES_AVAIL,
                        Attr.FILES_FREE, Attr.FILES_TOTAL})
IMPL_ID = ImplId(b"securenfs.org", b"securenfs NFSv4.1 server", 0, 0)


class Nfs4Service:
    def __init__(self, ns: Namespace, executor: Executor, *, server_owner: bytes, server_scope: bytes,
                 lease_time: int, owners: OwnerMapper | None = None, limits: ServerLimits | None = None):
        self.ns = ns
        self.executor = executor
        self.owners: OwnerMapper = owners or NumericOwners()
        self.lease_time = lease_time
        self.clients = ClientTable(server_owner, server_scope, lease_time, IMPL_ID)
        self.sessions = SessionTable(limits)
        self.clients.on_drop = self.sessions.forget_client
        self._dns_exports = {e.export_id for e in ns.table.exports
                             if any(r.matches_address("127.0.0.1") is None for r in e.rules)}
        self.any_dns_rules = bool(self._dns_exports)

    def rules_need_dns(self, export: Export) -> bool:
        return export.export_id in self._dns_exports

    def watch_connection(self, conn: Any) -> None:
        """Forget a connection's session bindings when it closes (once per connection)."""
        if conn is None or conn.data.get("nfs4-watch"):
            return
        conn.data["nfs4-watch"] = True
        conn.on_close(lambda c: self.sessions.connection_closed(c.id))

    def on_reclaim_complete(self, client: Client) -> None:
        """Extension point: the grace manager (core II) counts these to end grace early."""
        log.debug("%s: RECLAIM_COMPLETE", client.describe())

    @staticmethod
    def fs_status(exc: FsError) -> int:
        if isinstance(exc, BadHandle):
            return Stat.BADHANDLE
        if isinstance(exc, BadName):
            return Stat.INVAL if exc.empty else Stat.BADNAME
        if isinstance(exc, BadCookie):
            return Stat.BAD_COOKIE
        if isinstance(exc, CookieVerifierMismatch):
            return Stat.NOT_SAME
        return status_from_errno(exc.errno)

    async def obj_info(self, ctx: CompoundContext, node: Node, attrs: list[int]) -> ObjInfo:
        """Everything GETATTR needs for ``node`` (one pool hop for a file)."""
        if node.pnode is not None:
            p = node.pnode
            obj = ObjInfo(self.ns.pseudo_stat(p), node.fh, self.ns.pseudo_fs, p.node_id, fileid=p.node_id)
        else:
            assert node.export is not None and node.fs is not None
            need_vfs = any(a in _VFS_ATTRS for a in attrs)
            st, vfs = await ctx.run(_stat, node.fs, node.fh, need_vfs)
            fsinfo = self.ns.fsinfo(node.export)
            if vfs is not None:
                fsinfo = FsInfo(fsinfo.fsid, fsinfo.lease_time, fsinfo.fh_expire_type, vfs, fsinfo.fs_root)
            mounted_on = st.st_ino
            if Attr.MOUNTED_ON_FILEID in attrs and node.fs.is_root(node.fh):
                mounted_on = self.ns.table.junction(node.export).node_id
            obj = ObjInfo(st, node.fh, fsinfo, mounted_on)
        if Attr.OWNER in attrs:
            obj.owner = await self.owners.uid_to_owner(obj.st.st_uid)
        if Attr.OWNER_GROUP in attrs:
            obj.group = await self.owners.gid_to_group(obj.st.st_gid)
        return obj


def _stat(fs: Any, fh: bytes, need_vfs: bool) -> tuple[os.stat_result, os.statvfs_result | None]:
    st = fs.stat(fh)
    return st, (fs.statvfs(fh) if need_vfs else None)


