"""Recovery as the server uses it: the store, the grace manager and, in a cluster, the
cluster hooks, tied together with one background task.

The wiring into the protocol is meant to be small:

* Before a client's first open (OPEN, any claim): ``await recovery.client_confirmed(owner,
  principal)``; on ``RecoveryUnavailable`` answer NFS4ERR_DELAY and grant nothing.  A
  client that never holds state is never recorded, so grace never waits for it.
* DESTROY_CLIENTID and lease-expiry revocation: ``await recovery.client_removed(owner)``.
* OPEN CLAIM_PREVIOUS / LOCK reclaim: ``recovery.grace.check_reclaim(owner, sent)``, then
  ``recovery.grace.note_reclaim(owner)`` on success; non-reclaim OPEN/LOCK:
  ``check_new_state``; READ/WRITE: ``check_io``.
* RECLAIM_COMPLETE: ``recovery.reclaim_complete(owner, one_fs)``.
* ``recovery.status()`` for the admin socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from securenfs.recovery.errors import RecoveryError, RecoveryUnavailable
from securenfs.recovery.grace import Decision, GraceManager, grace_warnings
from securenfs.recovery.records import ClientRecord, owner_label
from securenfs.recovery.store import ClusterHooks, RecoveryStore

log = logging.getLogger("securenfs.recovery")


class Recovery:
    def __init__(self, store: RecoveryStore, grace: GraceManager, *, cluster: ClusterHooks | None = None,
                 tick: float = 1.0, lease_time: float | None = None) -> None:
        self.store = store
        self.grace = grace
        self.cluster = cluster
        self.tick = tick
        self.lease_time = lease_time if lease_time is not None else grace.grace_time
        self.epoch = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._store_ok = True
        #: Called with (kind, seconds) after each durable record write or removal (the
        #: server's metrics, when on).
        self.on_write: Callable[[str, float], None] | None = None

    async def start(self, epoch: int) -> None:
        """Open the store and begin grace.  Raises RecoveryError (the server must then refuse
        to start)."""
        for w in grace_warnings(self.grace.grace_time, self.lease_time):
            log.warning("%s", w)
        self.epoch = epoch
        await self.store.open()
        try:
            if self.cluster is not None:
                await self.cluster.join()
            await self.store.start_grace(epoch)
            if self.cluster is not None:
                await self.cluster.need_grace()
                self.grace.set_cluster_grace(True)
        except BaseException:
            await self.store.close()
            raise
        recs = self.store.reclaimable_records()
        self.grace.start(self.store.reclaimable(), {o: _label(r) for o, r in recs.items()})
        # With nobody to wait for, grace ends before the first request is read (and a
        # cluster's grace state is known before this node serves anything).
        try:
            await self.step()
        except RecoveryError as exc:
            log.warning("first grace round: %s (retried in the background)", exc)
        self._task = asyncio.create_task(self._run(), name="securenfs-grace")

    async def take_over(self, node_id: str) -> int:
        """Adopt a failed node's clients (cluster only); returns how many."""
        if self.cluster is None:
            raise RecoveryError("taking over another node's clients needs the etcd recovery backend")
        owners = await self.cluster.take_over(node_id)
        recs = self.store.reclaimable_records()
        self.grace.add_expected(owners, {o: _label(recs[o]) for o in owners if o in recs})
        await self.cluster.need_grace()
        self.grace.set_cluster_grace(True)
        self._wake.set()
        return len(owners)

    # -- events from the protocol --------------------------------------------------------------
    async def client_confirmed(self, owner_id: bytes, principal: str | None) -> ClientRecord:
        """Called before a client's first open.  Durable on return; raises RecoveryUnavailable
        (answer NFS4ERR_DELAY, grant nothing)."""
        t0 = time.perf_counter()
        rec = await self.store.record_client(owner_id, principal)
        if self.on_write is not None:
            self.on_write("record", time.perf_counter() - t0)
        return rec

    async def forget_stateless(self, owner_ids: list[bytes]) -> None:
        """Clean stop: clients that hold no open or lock have nothing to reclaim, so their
        records go (a reclaim from them would be bogus: NFS4ERR_RECLAIM_BAD).  Then the next
        grace period waits only for clients that really hold state."""
        for owner in owner_ids:
            try:
                await self.store.remove_client(owner)
            except RecoveryError as exc:
                log.warning("%s (the record stays; it is dropped at the end of the next grace period)", exc)
                return

    async def client_removed(self, owner_id: bytes) -> None:
        """DESTROY_CLIENTID, or the client's state revoked after its lease expired."""
        self.grace.client_gone(owner_id)
        self._wake.set()
        t0 = time.perf_counter()
        try:
            await self.store.remove_client(owner_id)
            if self.on_write is not None:
                self.on_write("remove", time.perf_counter() - t0)
        except RecoveryUnavailable as exc:
            # Harmless to keep: a stale record only lets the client reclaim nothing.
            log.warning("%s (the record stays; it is dropped at the end of the next grace period)", exc)

    def reclaim_complete(self, owner_id: bytes, one_fs: bool = False, fs: Any = None) -> Decision:
        d = self.grace.reclaim_complete(owner_id, one_fs, fs)
        if not one_fs:
            self._wake.set()
        return d

    # -- the background task -------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep grace moving whatever one round hit
                log.exception("grace period bookkeeping failed; retrying")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)

    async def step(self) -> None:
        """One round: end this node's grace when due, follow the cluster's grace."""
        if self.grace.due():
            try:
                dropped = await self.store.end_grace()
            except RecoveryUnavailable as exc:
                # Stay in grace: new state must not be granted while the records of clients
                # that did not come back could still let them reclaim after a crash.
                if self._store_ok:
                    log.error("cannot end the grace period: %s; staying in grace until it works", exc)
                self._store_ok = False
                return
            self._store_ok = True
            if dropped:
                log.info("dropped %d client record(s) not reclaimed in this grace period", dropped)
            self.grace.finish()
            if self.cluster is not None:
                await self.cluster.lift_grace()
        if self.cluster is not None:
            try:
                self.grace.set_cluster_grace(await self.cluster.cluster_in_grace())
            except RecoveryUnavailable as exc:
                # Keep the last known answer; a node cut off from etcd grants no client its
                # first open anyway (no durable record), and grace can only be lifted by the cluster.
                log.warning("cluster grace state unknown: %s", exc)

    # -- admin and stop ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        st = self.grace.status()
        # The name the admin socket's human view reads.
        st["clients_to_reclaim"] = st["clients_missing"] if st["local_grace"] == "in_grace" else []
        st["epoch"] = self.epoch
        st["backend"] = type(self.store).__name__
        if self.cluster is not None:
            st["node"] = self.cluster.node_id
        return st

    async def stop(self) -> None:
        """Clean and fast: every record is already durable; never waits out leases
        (seed 004, point 4)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.cluster is not None:
            try:
                await self.cluster.leave()
            except RecoveryError as exc:
                log.warning("leaving the cluster: %s (membership expires by itself)", exc)
        await self.store.close()


def _label(rec: ClientRecord) -> str:
    who = owner_label(rec.owner_id)
    return f"{who} ({rec.principal})" if rec.principal else who
