"""Per-COMPOUND state: caller, session, current and saved file handles, current stateid."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from securenfs.exports.squash import apply_squash
from securenfs.exports.table import Access, Export
from securenfs.nfs4.namespace import Node
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error, status_from_errno
from securenfs.rpc.auth import Credential
from securenfs.vfs.creds import FsCreds
from securenfs.vfs.errors import FsError
from securenfs.vfs.status import nfs_status

if TYPE_CHECKING:
    from securenfs.nfs4.service import Nfs4Service
    from securenfs.state.clients import Client
    from securenfs.state.sessions import Session

log = logging.getLogger("securenfs.nfs4")
R = TypeVar("R")


@dataclass(slots=True, frozen=True)
class CurrentStateid:
    """The current stateid (RFC 8881 §16.2.3.1.2) and the current file handle it was set
    with.  An operation that sets the current file handle without returning a stateid (PUTFH,
    PUTROOTFH, PUTPUBFH, LOOKUP, LOOKUPP, RESTOREFH, CREATE) leaves the COMPOUND without a
    current stateid: the marker then answers NFS4ERR_BAD_STATEID.  Every such operation
    installs a new :class:`~securenfs.nfs4.namespace.Node`, so the stateid is current only
    while ``ctx.cfh`` is the very node it was set with."""

    raw: bytes
    node: Node | None


class CompoundContext:
    __slots__ = (
        "_access",
        "cfh",
        "cfh_checked",
        "client",
        "conn",
        "conn_id",
        "cred",
        "fresh_stat",
        "numops",
        "opindex",
        "peer",
        "session",
        "sfh",
        "sfh_checked",
        "stateid",
        "svc",
    )

    def __init__(self, svc: Nfs4Service, cred: Credential, peer: str, conn: Any):
        self.svc = svc
        self.cred = cred
        self.peer = peer
        self.conn = conn
        self.conn_id: int | None = getattr(conn, "id", None)
        self.session: Session | None = None
        self.client: Client | None = None
        self.cfh: Node | None = None
        self.sfh: Node | None = None
        #: Whether the security check of RFC 8881 §2.6.3.1 has been applied to cfh/sfh.
        self.cfh_checked = False
        self.sfh_checked = False
        #: The current stateid (RFC 8881 §16.2.3.1.2); used by the state ops of core II.
        self.stateid: CurrentStateid | None = None
        self._access: dict[int, Access | None] = {}
        self.opindex = 0
        self.numops = 0
        #: (node, opindex, stat) of an object the operation at ``opindex`` has just stat'ed
        #: (LOOKUP): a GETATTR right after it on the same node uses that stat.
        self.fresh_stat: tuple[Node, int, os.stat_result] | None = None

    # -- file handles --------------------------------------------------------------------------
    def set_cfh(self, node: Node, checked: bool = False) -> None:
        self.cfh = node
        self.cfh_checked = checked

    def require_cfh(self) -> Node:
        if self.cfh is None:
            raise Nfs4Error(Stat.NOFILEHANDLE)
        return self.cfh

    # -- security ------------------------------------------------------------------------------
    async def access_for(self, export: Export) -> Access:
        """The client rule of ``export`` matching this peer; NFS4ERR_ACCESS when none does."""
        if export.export_id in self._access:
            acc = self._access[export.export_id]
        else:
            if self.svc.rules_need_dns(export):
                acc = await self.run(self.svc.ns.table.access, export, self.peer)
            else:
                acc = self.svc.ns.table.access(export, self.peer)
            self._access[export.export_id] = acc
        if acc is None:
            self.svc.peerlog.log(log, logging.INFO, self.peer, "ACCESS", "%s refused by the client rules of %s",
                                 self.peer, export.describe())
            raise Nfs4Error(Stat.ACCESS, f"client {self.peer} is not allowed to use {export.pseudo}")
        return acc

    async def check(self, node: Node) -> None:
        """The one security check (flavor then client rule) of RFC 8881 §2.6.3.1."""
        policy = self.svc.ns.policy
        target = node.target
        if not policy.allows(target, self.cred.pseudo_flavor):
            self.svc.peerlog.log(log, logging.INFO, self.peer, "WRONGSEC", "%s %s: NFS4ERR_WRONGSEC: %s", self.peer,
                                 self.cred.describe(), policy.explain(target, self.cred.pseudo_flavor))
            raise Nfs4Error(Stat.WRONGSEC, policy.explain(target, self.cred.pseudo_flavor))
        if node.export is not None:
            await self.access_for(node.export)
        elif node.pnode is not None and node.pnode.parent is not None:
            # A pseudo directory leads only to exports: show it only to clients that may use
            # one of them (the root stays visible so every mount can start).
            if not await self.run_maybe(self.svc.ns.table.visible, node.pnode, self.peer):
                raise Nfs4Error(Stat.NOENT, "no such pseudo directory")

    async def check_cfh(self) -> None:
        node = self.require_cfh()
        if not self.cfh_checked:
            await self.check(node)
            self.cfh_checked = True

    async def creds_for(self, export: Export) -> FsCreds:
        """The identity file-system work runs as, after the export's squash rule: the
        AUTH_SYS ids, or for a Kerberos principal the uid, gid and groups the ID mapper
        gives (the anonymous id when it has none; NFS4ERR_DELAY while it cannot answer)."""
        acc = await self.access_for(export)
        c = self.cred
        if c.principal is not None:
            ident = await self.svc.owners.principal_identity(str(c.principal))
            if ident is not None:
                return apply_squash(acc, ident[0], ident[1], ident[2])
        elif c.uid is not None and c.gid is not None:
            return apply_squash(acc, c.uid, c.gid, c.gids)
        return FsCreds(acc.anonuid, acc.anongid, ())

    async def read_only(self, export: Export) -> bool:
        return (await self.access_for(export)).read_only

    # -- running blocking work -----------------------------------------------------------------
    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a blocking file-system call in the server's pool; FsError -> NFS4ERR_*."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.svc.executor, fn, *args)
        except FsError as exc:
            raise Nfs4Error(nfs_status(exc), str(exc)) from None
        except OSError as exc:
            raise Nfs4Error(status_from_errno(exc.errno), str(exc)) from None

    def run_now(self, fn: Callable[..., R], *args: Any) -> R:
        """Run a short file-system call (a stat of a handle) on the event-loop thread, with
        :meth:`run`'s error mapping: a thread hand-off costs more than the call itself."""
        try:
            return fn(*args)
        except FsError as exc:
            raise Nfs4Error(nfs_status(exc), str(exc)) from None
        except OSError as exc:
            raise Nfs4Error(status_from_errno(exc.errno), str(exc)) from None

    async def run_meta(self, fn: Callable[..., R], *args: Any) -> R:
        """A metadata call (stat, LOOKUP, ACCESS of a handle): on the event-loop thread when
        ``server.inline_metadata`` is on (the default), else in the pool.  These are a few
        system calls on cached inodes; a thread hand-off costs more than the call."""
        if self.svc.inline_metadata:
            return self.run_now(fn, *args)
        return await self.run(fn, *args)

    async def run_maybe(self, fn: Callable[..., R], *args: Any) -> R:
        """Like :meth:`run` when the call may touch DNS; inline when it cannot."""
        if self.svc.any_dns_rules:
            return await self.run(fn, *args)
        return fn(*args)
