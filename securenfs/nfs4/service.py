"""The NFSv4.1 service: the server's protocol state and the parts the ops share."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, NoReturn

from securenfs.exports.table import Export
from securenfs.nfs4.namespace import Namespace
from securenfs.nfs4.owners import NumericOwners, OwnerMapper
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.rpc.peerlog import PeerLog
from securenfs.state.clients import Client, ClientTable
from securenfs.state.laundromat import Laundromat
from securenfs.state.limits import ClientLimits, RefusalLog, top_peers
from securenfs.state.opens import StateManager
from securenfs.state.sessions import ServerLimits, SessionTable

if TYPE_CHECKING:
    from securenfs.admin.metrics import ServerMetrics
    from securenfs.recovery.service import Recovery

log = logging.getLogger("securenfs.nfs4")


class Nfs4Service:
    def __init__(self, ns: Namespace, executor: Executor, *, server_owner: bytes, server_scope: bytes,
                 lease_time: int, owners: OwnerMapper | None = None, limits: ServerLimits | None = None,
                 boot_epoch: int = 1, max_open_files: int = 1024, courtesy_max_age: float = 86400.0,
                 courtesy_max_clients: int = 1000, client_limits: ClientLimits | None = None):
        self.ns = ns
        self.executor = executor
        #: Log budget per peer for lines about what clients sent (the RPC server's, when wired).
        self.peerlog = PeerLog()
        self.owners: OwnerMapper = owners or NumericOwners()
        self.lease_time = lease_time
        self.clients = ClientTable(server_owner, server_scope, lease_time, boot_epoch=boot_epoch)
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
        self.state.revoke_listeners.append(self._client_revoked)
        self.clients.state_probe = lambda cid: bool(self.state.clients.get(cid))
        #: Run metadata calls (stat, LOOKUP, ACCESS) on the event-loop thread (see
        #: CompoundContext.run_meta); ``server.inline_metadata`` in the configuration.
        self.inline_metadata = True
        #: Prometheus series counted per operation (``server.metrics_listen``); None: off.
        self.metrics: ServerMetrics | None = None
        #: WRITE/COMMIT verifier: changes at every start (RFC 8881 §18.32.3).
        self.write_verifier = struct.pack(">Q", boot_epoch)
        #: The periodic lease check (RFC 8881 §8.3), started by the first COMPOUND.
        self.laundromat = Laundromat(self.clients, self.state, lease_time, courtesy_max_age=courtesy_max_age,
                                     courtesy_max_clients=courtesy_max_clients)
        #: Bounds on client owners and on each client's sessions (server.max_clients,
        #: server.max_sessions_per_client).
        self.client_limits = client_limits or ClientLimits.for_machine()
        self._room_tried_at: float | None = None
        self._refusals = {"exchange_id": RefusalLog(), "create_session": RefusalLog()}
        ns.on_close.append(self.close)
        self.index_client_rules()

    def index_client_rules(self) -> None:
        """Which exports have host-name client rules (at start and after a reload)."""
        self._dns_exports = {e.export_id for e in self.ns.table.exports
                             if any(r.matches_address("127.0.0.1") is None for r in e.rules)}
        self.any_dns_rules = bool(self._dns_exports)

    def _lease_expired(self, clientid: int) -> bool:
        c = self.clients.get(clientid)
        return c is None or c.lease_expired(self.lease_time)

    def _client_revoked(self, clientid: int) -> None:
        """A client whose state is revoked after its lease expired loses its right to
        reclaim after a restart (RFC 8881 §8.4.3): its record goes with the state."""
        c = self.clients.get(clientid)
        if c is not None and self.has_record(c):
            c.recorded = False
            self.forget_record(c.ownerid)

    def _client_expired(self, client: Client) -> None:
        if self.has_record(client):
            self.forget_record(client.ownerid)

    def has_record(self, client: Client) -> bool:
        """Whether the client may have a stable record: written in this boot (before its
        first open), or left from before the start (it may still reclaim)."""
        rec = self.recovery
        return rec is not None and (client.recorded or rec.grace.may_reclaim(client.ownerid))

    async def record_state_holder(self, client: Client) -> None:
        """Make the client's stable record durable before it gets its first open or lock
        (RFC 8881 §8.4.2.1: after a restart the server must know which clients may reclaim).
        Only clients that hold state are recorded, so the grace period after a crash waits
        for nobody who has nothing to reclaim; one write per client, not one per OPEN.  No
        durable record, no state: NFS4ERR_DELAY, and the client retries."""
        rec = self.recovery
        if rec is None or client.recorded:
            return
        from securenfs.recovery.errors import RecoveryUnavailable

        try:
            await rec.client_confirmed(client.ownerid, None if client.principal == "none" else client.principal)
        except RecoveryUnavailable as exc:
            log.warning("%s gets no open or lock yet: %s", client.describe(), exc)
            raise Nfs4Error(Stat.DELAY, "the client record could not be made durable; retry") from None
        if self.clients.get(client.clientid) is not client:
            # Replaced or expired while the record was written; the retry finds out which.
            raise Nfs4Error(Stat.DELAY, f"client id {client.clientid:#018x} went away while it was recorded")
        client.recorded = True

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
        """Confirmed clients with a stable record but no open or lock (nothing to reclaim
        after a restart)."""
        held = {c.ownerid for c in self.clients.clients()
                if c.confirmed and self.state.clients.get(c.clientid)}
        return [c.ownerid for c in self.clients.clients()
                if c.confirmed and c.ownerid not in held and self.has_record(c)]

    def _client_dropped(self, client: Client) -> None:
        self.sessions.forget_client(client)
        self.state.drop_client(client.clientid)

    # -- limits on clients and sessions -----------------------------------------------------------
    def admit_client(self, ownerid: bytes, peer: str) -> None:
        """EXCHANGE_ID: a client owner not known yet needs room in the table.  When it is full
        the laundromat first tries to make room; if it cannot, NFS4ERR_DELAY (the client
        retries; RFC 8881 §15.1.1.3)."""
        self.laundromat.start()
        cap = self.client_limits.max_clients
        if self.clients.knows_owner(ownerid) or self.clients.owner_count() < cap:
            return
        self.make_room()
        if self.clients.owner_count() < cap:
            return
        self._refuse("exchange_id", f"client table full ({cap} client owners)", lambda n: (
            f"client table full ({self.clients.owner_count()} client owners, server.max_clients = {cap}): "
            f"{n} EXCHANGE_ID(s) answered NFS4ERR_DELAY, the latest from {peer}; peers holding the most "
            f"clients: {top_peers(c.peer for c in self.clients.clients())}"))

    def admit_session(self, client: Client, sequence: int, peer: str) -> None:
        """CREATE_SESSION: at most ``max_sessions_per_client`` sessions per client.  A retry of
        the CREATE_SESSION already answered (its replay cache, RFC 8881 §18.36.4) needs no
        room.  The laundromat cannot free a live client's sessions, so past the bound the
        answer is NFS4ERR_DELAY until the client destroys one."""
        self.laundromat.start()
        cap = self.client_limits.max_sessions_per_client
        if len(client.sessions) < cap or (sequence == client.cs_seq and client.cs_reply is not None):
            return
        self._refuse("create_session", f"client holds {cap} sessions already", lambda n: (
            f"{client.describe()} holds {len(client.sessions)} sessions (server.max_sessions_per_client = "
            f"{cap}): {n} CREATE_SESSION(s) answered NFS4ERR_DELAY, the latest from {peer}; peers holding "
            f"the most sessions: {top_peers(c.peer for c in self.clients.clients() for _ in c.sessions)}"))

    def _refuse(self, op: str, why: str, line: Callable[[int], str]) -> NoReturn:
        """NFS4ERR_DELAY, with a log line (``line(refusals since the last one)``) at most once
        a minute per operation."""
        n = self._refusals[op].refused(time.monotonic())
        if n is not None:
            log.warning("%s", line(n))
        raise Nfs4Error(Stat.DELAY, why)

    def make_room(self) -> None:
        """The client table is full: run the laundromat now (expired clients without locking
        state go), then, if still full, expire the longest-expired courtesy client (its
        opens and locks are revoked: it lost its lease long ago, RFC 8881 §8.3).  At most
        once per interval: under a flood of EXCHANGE_IDs the walk over every client would
        otherwise run for each of them."""
        now = time.monotonic()
        if self._room_tried_at is not None and now - self._room_tried_at < self._make_room_interval():
            return
        self._room_tried_at = now
        self.laundromat.run()
        if self.clients.owner_count() < self.client_limits.max_clients:
            return
        courtesy = self.state.courtesy_clients()
        if courtesy:
            oldest = min(courtesy, key=lambda cs: cs.courtesy_since or now)
            c = self.clients.get(oldest.clientid)
            if c is not None:
                self.clients.expire(c, "client table full: the longest-expired courtesy client makes room")
            else:
                self.state.drop_client(oldest.clientid)

    def _make_room_interval(self) -> float:
        return min(1.0, self.lease_time / 8)

    def client_stats(self) -> dict[str, Any]:
        """For ``securenfs status``: what the client table and the session table hold."""
        cl = self.clients.clients()
        states = self.state.clients.values()
        return {
            "client_owners": self.clients.owner_count(),
            "confirmed": sum(1 for c in cl if c.confirmed),
            "unconfirmed": sum(1 for c in cl if not c.confirmed),
            "sessions": len(self.sessions),
            "bound_connections": self.sessions.bound_connections(),
            "with_state": len(self.state.clients),
            "courtesy": sum(1 for cs in states if cs.courtesy_since is not None),
            "opens": sum(len(cs.opens) for cs in states),
            "locks": sum(len(cs.locks) for cs in states),
            "lock_ranges": sum(cs.nranges for cs in states),
            "revoked": sum(len(cs.revoked) for cs in states),
            "max_clients": self.client_limits.max_clients,
            "max_sessions_per_client": self.client_limits.max_sessions_per_client,
            "refused_exchange_id": self._refusals["exchange_id"].total,
            "refused_create_session": self._refusals["create_session"].total,
        }

    def close(self) -> None:
        self.laundromat.stop()
        self.state.close_all()

    def rules_need_dns(self, export: Export) -> bool:
        return export.export_id in self._dns_exports

    def on_reclaim_complete(self, client: Client) -> None:
        """A global RECLAIM_COMPLETE: the grace manager counts these to end grace early."""
        log.debug("%s: RECLAIM_COMPLETE", client.describe())
        if self.recovery is not None:
            self.recovery.reclaim_complete(client.ownerid)
