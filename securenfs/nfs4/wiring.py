"""Builds the NFSv4.1 service from the configuration (called by securenfs.server)."""

from __future__ import annotations

from concurrent.futures import Executor

from securenfs.config import Config
from securenfs.exports.secpolicy import SecPolicy
from securenfs.exports.table import ExportError, ExportTable, Resolver
from securenfs.identity import load_identity
from securenfs.nfs4.namespace import Namespace
from securenfs.nfs4.owners import OwnerMapper
from securenfs.nfs4.service import Nfs4Service
from securenfs.rpc.auth import FLAVORS
from securenfs.rpc.peerlog import PeerLog
from securenfs.state.limits import ClientLimits
from securenfs.vfs.handles import HandleCodec, load_or_create_key


def build_service(cfg: Config, server_owner: str, server_scope: str, executor: Executor, *,
                  kerberos: bool, owners: OwnerMapper | None = None, boot_epoch: int | None = None,
                  overrides: dict[str, list[str]] | None = None, peerlog: PeerLog | None = None,
                  resolver: Resolver | None = None) -> Nfs4Service:
    """Raises ExportError (readable) when the exports cannot be served.  ``overrides``
    narrows exports (by pseudo path) to fewer flavors, see :class:`SecPolicy`.  ``resolver``:
    peer address -> confirmed host names for host-name client rules (default: the system's)."""
    table = ExportTable.from_config(cfg.exports) if resolver is None else ExportTable.from_config(
        cfg.exports, resolver=resolver)
    available = FLAVORS if kerberos else ("sys",)
    policy = SecPolicy(table, available, overrides)
    codec = HandleCodec(load_or_create_key(cfg.server.state_dir))
    ns = Namespace(table, policy, codec, cfg.server.lease_time)
    if boot_epoch is None:
        # The epoch the server advanced at this start (stateids and the write verifier).
        boot_epoch = load_identity(cfg.server.state_dir, server_owner, server_scope, bump_epoch=False).boot_epoch
    svc = Nfs4Service(ns, executor, server_owner=server_owner.encode(), server_scope=server_scope.encode(),
                       lease_time=cfg.server.lease_time, owners=owners, boot_epoch=boot_epoch,
                       client_limits=ClientLimits.for_machine(cfg.server.max_clients,
                                                              cfg.server.max_sessions_per_client))
    svc.inline_metadata = cfg.server.inline_metadata
    svc.state.kernel_locks = cfg.server.kernel_locks
    svc.state.max_lock_files = cfg.server.max_lock_files
    svc.state.max_lock_ranges = cfg.server.max_lock_ranges
    if peerlog is not None:
        svc.peerlog = peerlog
    return svc


__all__ = ["ExportError", "build_service"]
