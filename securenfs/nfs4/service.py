"""The NFSv4.1 service: the server's protocol state and the parts the ops share."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import struct
import time
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from securenfs.exports.table import Export
from securenfs.nfs4.acls import aces_of
from securenfs.nfs4.constants import Attr, Stat
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.errors import status_from_errno
from securenfs.nfs4.fattr import ACL_ATTRS, ObjInfo
from securenfs.nfs4.namespace import Namespace, Node
from securenfs.nfs4.owners import NumericOwners, OwnerMapper
from securenfs.nfs4.xdr4 import ImplId
from securenfs.state.clients import Client, ClientTable
from securenfs.state.opens import StateManager
from securenfs.state.sessions import ServerLimits, SessionTable
from securenfs.vfs import acls as vfs_acls
from securenfs.vfs.errors import BadCookie, BadName, CookieVerifierMismatch, FsError
from securenfs.vfs.handles import BadHandle

if TYPE_CHECKING:
    from securenfs.recovery.service import Recovery

log = logging.getLogger("securenfs.nfs4")

_VFS_ATTRS = frozenset({Attr.SPACE_AVAIL, Attr.SPACE_FREE, Attr.SPACE_TOTAL, Attr.FILES_AVAIL,
                        Attr.FILES_FREE, Attr.FILES_TOTAL})
IMPL_ID = ImplId(b"securenfs.org", b"securenfs NFSv4.1 server", 0, 0)


class Nfs4Service:
    def __init__(self, ns: Namespace, executor: Executor, *, server_owner: bytes, server_scope: bytes,
                 lease_time: int, owners: OwnerMapper | None = None, limits: ServerLimits | None = None,
                 boot_epoch: int = 1, max_open_files: int = 1024, courtesy_max_age: float = 86400.0,
                 courtesy_max_clients: int = 1000):
        self.ns = ns
        self.executor = executor
        self.owners: OwnerMapper = owners or NumericOwners()
        self.lease_time = lease_time
        self.clients = ClientTable(server_owner, server_scope, lease_time, IMPL_ID, boot_epoch=boot_epoch)
        self.sessions = SessionTable(limits)
        #: Opens, locks and stateids (core II); stateids carry the boot epoch.
        self.state = StateManager(boot_epoch, max_open_files=max_open_files,
                                  lease_expired=self._lease_expired)
        self.clients.on_drop = self._client_dropped
        self.clients.on_expire = self._client_expired
        #: Stable client records and the grace period (securenfs.recovery); None serves
        #: without them (reclaims then get NFS4ERR_NO_GRACE).
        self.recovery: Recovery | None = None
        self._record_tasks: set[asyncio.Task[None]] = set()
        # A client whose state is revoked after its lease expired loses its right to
        # reclaim after a restart (RFC 8881 §8.4.3): its record goes with the state.
        revoke = self.state.revoke_client

        def revoke_and_forget(clientid: int, *args: Any, **kw: Any) -> int:
            n = revoke(clientid, *args, **kw)
            c = self.clients.get(clientid)
            if c is not None:
                self.forget_record(c.ownerid)
            return n

        self.state.revoke_client = revoke_and_forget  # type: ignore[method-assign]
        self.clients.state_probe = lambda cid: bool(self.state.clients.get(cid))
        #: Run metadata calls (stat, LOOKUP, ACCESS) on the event-loop thread (see
        #: CompoundContext.run_meta); ``server.inline_metadata`` in the configuration.
        self.inline_metadata = True
        #: WRITE/COMMIT verifier: changes at every start (RFC 8881 §18.32.3).
        self.write_verifier = struct.pack(">Q", boot_epoch)
        self.courtesy_max_age = courtesy_max_age
        self.courtesy_max_clients = courtesy_max_clients
        self._laundromat: asyncio.TimerHandle | None = None
        ns.on_close.append(self.close)
        self._dns_exports = {e.export_id for e in ns.table.exports
                             if any(r.matches_address("127.0.0.1") is None for r in e.rules)}
        self.any_dns_rules = bool(self._dns_exports)

    def _lease_expired(self, clientid: int) -> bool:
        c = self.clients.get(clientid)
        return c is None or c.lease_expired(self.lease_time)

    def _client_expired(self, client: Client) -> None:
        self.forget_record(client.ownerid)

    def forget_record(self, owner_id: bytes) -> None:
        """Remove a client's stable record in the background (the caller holds no await)."""
        rec = self.recovery
        if rec is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        t = loop.create_task(rec.client_removed(owner_id))
        self._record_tasks.add(t)
        t.add_done_callback(self._record_tasks.discard)

    async def settle_records(self) -> None:
        """Wait for background record removals (clean stop)."""
        if self._record_tasks:
            await asyncio.gather(*list(self._record_tasks), return_exceptions=True)

    def stateless_owners(self) -> list[bytes]:
        """Confirmed clients holding no open or lock (nothing to reclaim after a restart)."""
        held = {c.ownerid for c in self.clients.clients()
                if c.confirmed and self.state.clients.get(c.clientid)}
        return [c.ownerid for c in self.clients.clients() if c.confirmed and c.ownerid not in held]

    def _client_dropped(self, client: Client) -> None:
        self.sessions.forget_client(client)
        self.state.drop_client(client.clientid)

    # -- the laundromat (RFC 8881 §8.3) ----------------------------------------------------------
    def ensure_laundromat(self) -> None:
        """Start the periodic lease check on the running loop (once)."""
        if self._laundromat is None:
            loop = asyncio.get_running_loop()
            self._laundromat = loop.call_later(self._laundromat_interval(), self._launder)

    def _laundromat_interval(self) -> float:
        return max(0.5, min(self.lease_time / 4, 15.0))

    def _launder(self) -> None:
        try:
            self.launder()
        except Exception:
            log.exception("laundromat")
        loop = asyncio.get_running_loop()
        self._laundromat = loop.call_later(self._laundromat_interval(), self._launder)

    def launder(self) -> None:
        """Expired clients without state go; expired clients with state stay as courtesy
        clients until their state conflicts with another client's request, they grow
        older than ``courtesy_max_age``, or there are more than ``courtesy_max_clients``."""
        self.clients.expire_idle()
        courtesy = self.state.courtesy_clients()
        now = time.monotonic()
        courtesy.sort(key=lambda cs: cs.courtesy_since or now)
        excess = len(courtesy) - self.courtesy_max_clients
        for i, cs in enumerate(courtesy):
            if i < excess or now - (cs.courtesy_since or now) > self.courtesy_max_age:
                c = self.clients.get(cs.clientid)
                if c is not None:
                    self.clients.expire(c, "courtesy period over (lease expired long ago)")
                else:
                    self.state.drop_client(cs.clientid)

    def close(self) -> None:
        if self._laundromat is not None:
            self._laundromat.cancel()
            self._laundromat = None
        self.state.close_all()

    def rules_need_dns(self, export: Export) -> bool:
        return export.export_id in self._dns_exports

    def watch_connection(self, conn: Any) -> None:
        """Forget a connection's session bindings when it closes (once per connection)."""
        if conn is None or conn.data.get("nfs4-watch"):
            return
        conn.data["nfs4-watch"] = True
        conn.on_close(lambda c: self.sessions.connection_closed(c.id))

    def on_reclaim_complete(self, client: Client) -> None:
        """A global RECLAIM_COMPLETE: the grace manager counts these to end grace early."""
        log.debug("%s: RECLAIM_COMPLETE", client.describe())
        if self.recovery is not None:
            self.recovery.reclaim_complete(client.ownerid)

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
        want_acl = any(a in ACL_ATTRS for a in attrs)
        access = default = None
        if node.pnode is not None:
            p = node.pnode
            obj = ObjInfo(self.ns.pseudo_stat(p), node.fh, self.ns.pseudo_fs, p.node_id, fileid=p.node_id)
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
            fsinfo = self.ns.fsinfo(node.export)
            if vfs is not None:
                fsinfo = dataclasses.replace(fsinfo, statvfs=vfs)
            mounted_on = st.st_ino
            if Attr.MOUNTED_ON_FILEID in attrs and node.fs.is_root(node.fh):
                mounted_on = self.ns.table.junction(node.export).node_id
            obj = ObjInfo(st, node.fh, fsinfo, mounted_on)
        if want_acl:
            obj.acl = await aces_of(self.owners, obj.st.st_mode, access, default)
        if Attr.OWNER in attrs:
            obj.owner = await self.owners.uid_to_owner(obj.st.st_uid)
        if Attr.OWNER_GROUP in attrs:
            obj.group = await self.owners.gid_to_group(obj.st.st_gid)
        return obj


def _stat(fs: Any, fh: bytes, need_vfs: bool) -> tuple[os.stat_result, os.statvfs_result | None]:
    st = fs.stat(fh)
    return st, (fs.statvfs(fh) if need_vfs else None)


