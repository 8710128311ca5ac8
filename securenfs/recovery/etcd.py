"""The etcd recovery backend: shared client records and a cluster-wide grace period for
nodes that serve one namespace with the same server identity.

Key layout under ``prefix`` (default ``/securenfs``; docs/ha.md):

``<prefix>/clients/<owner hex>``
    one JSON record per client that holds state: owner, principal, the node that recorded
    it, that node's boot epoch, time.  Written before the client's first open; a put returns
    once a quorum has it on disk.
``<prefix>/members/<node>``
    JSON, attached to a lease of ``member_ttl`` seconds kept alive by the node: a node that
    dies stops being a member when the lease runs out.
``<prefix>/grace/<node>``
    present while that node needs grace (it started and its clients are reclaiming).  Not
    on a lease: a node that dies during grace keeps the cluster in grace until a node takes
    over its clients, or until the deadline stored in the value passes; then any node drops
    the dead node's unreclaimed records and removes the key (so those clients cannot reclaim
    later, RFC 8881 §8.4.3).

The cluster is in grace while any ``grace/`` key exists; every node then refuses new state.
A starting node adopts the records of nodes that are no longer members (their clients may
now reclaim here); ``take_over(node)`` does the same at once for a node known to be fenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions

from securenfs.recovery.errors import RecoveryError, RecoveryUnavailable
from securenfs.recovery.records import ClientRecord, owner_label

log = logging.getLogger("securenfs.recovery")
T = TypeVar("T")

#: Epoch written on records adopted from another node: never a real boot epoch.
ADOPTED_EPOCH = -1

_TRANSIENT = (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError,
              aetcd.exceptions.InternalError, asyncio.TimeoutError)


class EtcdRecoveryStore:
    """``RecoveryStore`` and ``ClusterHooks`` over an etcd v3 cluster."""

    def __init__(self, node_id: str, endpoints: list[str], *, prefix: str = "/securenfs",
                 member_ttl: int = 10, timeout: float = 5.0, grace_time: float = 90.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not node_id or "/" in node_id:
            raise RecoveryError(f"recovery.node_id {node_id!r} is invalid: give each cluster node a "
                                "unique name without '/' (e.g. its host name)")
        if not endpoints:
            raise RecoveryError("recovery.etcd_endpoints is empty: list the etcd members as host:port")
        self.node_id = node_id
        self.endpoints = list(endpoints)
        self.prefix = prefix.rstrip("/").encode()
        self.member_ttl = member_ttl
        self.timeout = timeout
        self.grace_time = grace_time
        self.clock = clock
        self._epoch = 0
        self._client: Any = None
        self._current = 0
        self._lease: Any = None
        self._keepalive: asyncio.Task[None] | None = None
        #: owner -> (record, mod_revision seen at the snapshot)
        self._old: dict[bytes, tuple[ClientRecord, int]] = {}

    # -- keys ----------------------------------------------------------------------------------
    def _k(self, *parts: str) -> bytes:
        return self.prefix + b"/" + "/".join(parts).encode()

    def _client_key(self, owner_id: bytes) -> bytes:
        return self._k("clients", owner_id.hex())

    @staticmethod
    def _decode_record(value: bytes) -> ClientRecord:
        d = json.loads(value)
        return ClientRecord(bytes.fromhex(d["owner"]), d.get("principal"), float(d["time"]), int(d["epoch"]),
                            str(d.get("node", "")))

    @staticmethod
    def _encode_record(rec: ClientRecord) -> bytes:
        return json.dumps({"owner": rec.owner_id.hex(), "principal": rec.principal, "node": rec.node,
                           "epoch": rec.epoch, "time": rec.recorded_at}, sort_keys=True).encode()

    # -- connection ----------------------------------------------------------------------------
    def _new_client(self) -> Any:
        host, _, port = self.endpoints[self._current].rpartition(":")
        return aetcd.Client(host=host or "127.0.0.1", port=int(port or 2379), timeout=max(1, round(self.timeout)))

    async def _call(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(client)``; on a transport failure or timeout, try the other endpoints once
        each.  Raises RecoveryUnavailable naming the endpoints when none answers."""
        last: BaseException | None = None
        for _ in range(len(self.endpoints)):
            if self._client is None:
                self._client = self._new_client()
            client = self._client
            try:
                return await asyncio.wait_for(fn(client), self.timeout + 1)
            except (*_TRANSIENT, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError):
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise  # we are being cancelled ourselves
                    # Another task closed the shared channel under this call (it saw the
                    # endpoint fail): retry on the next endpoint.
                last = exc
                if self._client is client:
                    bad = self.endpoints[self._current]
                    self._client = None
                    self._current = (self._current + 1) % len(self.endpoints)
                    log.debug("etcd %s failed at %s (%s); trying %s", what, bad, exc,
                              self.endpoints[self._current])
                    with contextlib.suppress(Exception):
                        await client.close()
            except aetcd.exceptions.ClientError as exc:
                raise RecoveryUnavailable(f"etcd {what} failed: {exc}") from None
        raise RecoveryUnavailable(
            f"etcd unreachable for {what}: none of {', '.join(self.endpoints)} answered within "
            f"{self.timeout:g} s ({last}). Check the cluster with `etcdctl --endpoints="
            f"{','.join(self.endpoints)} endpoint health`; it needs a quorum of its members")

    # -- RecoveryStore -------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            await self._call("connect", lambda c: c.get(self._k("members")))
        except RecoveryUnavailable as exc:
            await self._close_client()
            raise RecoveryError(f"recovery store: {exc}. The server does not start without its "
                                "client records (clients could not reclaim their locks)") from None

    async def record_client(self, owner_id: bytes, principal: str | None) -> ClientRecord:
        rec = ClientRecord(bytes(owner_id), principal, self.clock(), self._epoch, self.node_id)
        await self._call("record client", lambda c: c.put(self._client_key(rec.owner_id),
                                                          self._encode_record(rec)))
        return rec

    async def remove_client(self, owner_id: bytes) -> None:
        await self._call("remove client", lambda c: c.delete(self._client_key(bytes(owner_id))))

    def reclaimable(self) -> frozenset[bytes]:
        return frozenset(self._old)

    def reclaimable_records(self) -> Mapping[bytes, ClientRecord]:
        return {o: r for o, (r, _) in self._old.items()}

    async def _all_records(self) -> list[tuple[ClientRecord, int]]:
        res = await self._call("read clients", lambda c: c.get_prefix(self._k("clients") + b"/"))
        out = []
        for kv in res:
            try:
                out.append((self._decode_record(kv.value), kv.mod_revision))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("etcd: ignoring unreadable client record %r: %s", kv.key, exc)
        return out

    async def records(self) -> list[ClientRecord]:
        return sorted((r for r, _ in await self._all_records()), key=lambda r: r.owner_id)

    async def members(self) -> set[str]:
        res = await self._call("read members", lambda c: c.get_prefix(self._k("members") + b"/"))
        return {kv.key.rsplit(b"/", 1)[1].decode() for kv in res}

    async def _delete(self, what: str, key: bytes) -> None:
        await self._call(what, lambda c: c.delete(key))

    async def _cas(self, what: str, key: bytes, rev: int, value: bytes | None = None) -> bool:
        """Put ``value`` at ``key`` (or delete it when None) only if its mod revision is still
        ``rev``: nobody wrote the record since we read it."""
        async def txn(c: Any) -> bool:
            t = c.transactions
            action = t.delete(key) if value is None else t.put(key, value)
            ok, _ = await c.transaction(compare=[t.mod(key) == rev], success=[action], failure=[])
            return bool(ok)

        return await self._call(what, txn)

    async def _adopt(self, rec: ClientRecord, rev: int) -> int | None:
        """Move one record to this node (compare-and-swap on its revision)."""
        new = ClientRecord(rec.owner_id, rec.principal, rec.recorded_at, ADOPTED_EPOCH, self.node_id)
        key = self._client_key(rec.owner_id)

        if not await self._cas("adopt client", key, rev, self._encode_record(new)):
            return None
        got = await self._call("read client", lambda c: c.get(key))
        return None if got is None else int(got.mod_revision)

    async def _adopt_node(self, node: str, recs: list[tuple[ClientRecord, int]]) -> list[bytes]:
        adopted = []
        for rec, rev in recs:
            if rec.node != node:
                continue
            new_rev = await self._adopt(rec, rev)
            if new_rev is not None:
                self._old[rec.owner_id] = (ClientRecord(rec.owner_id, rec.principal, rec.recorded_at,
                                                        ADOPTED_EPOCH, self.node_id), new_rev)
                adopted.append(rec.owner_id)
        await self._call("clear grace", lambda c: c.delete(self._k("grace", node)))
        if adopted:
            log.warning("took over %d client(s) of node %s: %s", len(adopted), node,
                        ", ".join(owner_label(o) for o in adopted[:10]) + (" ..." if len(adopted) > 10 else ""))
        return adopted

    async def start_grace(self, new_epoch: int) -> None:
        self._epoch = new_epoch
        live = await self.members()
        recs = await self._all_records()
        self._old = {r.owner_id: (r, rev) for r, rev in recs if r.node == self.node_id and r.epoch != new_epoch}
        for node in sorted({r.node for r, _ in recs} - live - {self.node_id}):
            log.warning("node %s is not a live cluster member: its clients may reclaim here", node)
            await self._adopt_node(node, recs)

    async def end_grace(self) -> int:
        dropped = 0
        for owner, (_, rev) in list(self._old.items()):
            # Only if nobody wrote it since: a client that came back was recorded again.
            dropped += await self._cas("end grace", self._client_key(owner), rev)
            del self._old[owner]
        return dropped

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        await self._close_client()

    async def _close_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    # -- ClusterHooks --------------------------------------------------------------------------
    async def join(self) -> None:
        key = self._k("members", self.node_id)
        value = json.dumps({"node": self.node_id, "since": self.clock()}).encode()
        deadline = time.monotonic() + self.member_ttl + 2
        while True:
            lease: Any = await self._call("grant lease", lambda c: c.lease(self.member_ttl))

            async def txn(c: Any, lease: Any = lease) -> bool:
                t = c.transactions
                ok, _ = await c.transaction(compare=[t.create(key) == 0], success=[t.put(key, value, lease)],
                                            failure=[])
                return bool(ok)

            if await self._call("join", txn):
                break
            with contextlib.suppress(RecoveryUnavailable):
                await self._revoke(lease.id)
            if time.monotonic() > deadline:
                raise RecoveryError(
                    f"node id {self.node_id!r} is already a live member of the etcd cluster (key "
                    f"{key.decode()}): another node uses the same recovery.node_id; give every node "
                    "its own node_id (the server identity stays the same on all of them)")
            # Our own previous instance may have died moments ago: its membership expires.
            await asyncio.sleep(0.5)
        self._lease = lease
        if self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keep_alive(), name="securenfs-etcd-lease")
        log.info("joined the cluster as node %s (membership lease %d s)", self.node_id, self.member_ttl)

    async def _revoke(self, lease_id: int) -> None:
        await self._call("revoke lease", lambda c: c.revoke_lease(lease_id))

    async def _keep_alive(self) -> None:
        warned = False
        while True:
            await asyncio.sleep(max(0.2, self.member_ttl / 3))
            try:
                ttl = await self._call("refresh lease", lambda c: c.refresh_lease(self._lease.id))
                alive = getattr(ttl, "TTL", 0) > 0
                if not alive:
                    log.warning("etcd membership lease of node %s expired; joining again", self.node_id)
                    await self.join()
                elif warned:
                    log.info("etcd reachable again; membership of node %s kept", self.node_id)
                warned = False
            except RecoveryError as exc:
                if not warned:
                    log.warning("cannot renew cluster membership: %s", exc)
                warned = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("etcd membership keepalive failed")

    async def need_grace(self) -> None:
        now = self.clock()
        value = json.dumps({"node": self.node_id, "epoch": self._epoch, "since": now,
                            "deadline": now + 2 * self.grace_time}).encode()
        await self._call("need grace", lambda c: c.put(self._k("grace", self.node_id), value))

    async def lift_grace(self) -> None:
        await self._call("lift grace", lambda c: c.delete(self._k("grace", self.node_id)))

    async def grace_needs(self) -> dict[str, dict[str, Any]]:
        res = await self._call("read grace", lambda c: c.get_prefix(self._k("grace") + b"/"))
        out: dict[str, dict[str, Any]] = {}
        for kv in res:
            node = kv.key.rsplit(b"/", 1)[1].decode()
            try:
                out[node] = json.loads(kv.value)
            except ValueError:
                out[node] = {}
        return out

    async def cluster_in_grace(self) -> bool:
        needs = await self.grace_needs()
        if not needs:
            return False
        live: set[str] | None = None
        now = self.clock()
        for node, need in needs.items():
            if node == self.node_id or float(need.get("deadline", now + 1)) > now:
                continue
            if live is None:
                live = await self.members()
            if node in live:
                continue
            # A node died in grace and nobody took over within its grace time: its clients
            # that did not reclaim lose the right (RFC 8881 §8.4.3), then the need goes.
            epoch = int(need.get("epoch", 0))
            dropped = 0
            for rec, rev in await self._all_records():
                if rec.node == node and rec.epoch != epoch:
                    dropped += await self._cas("expire grace", self._client_key(rec.owner_id), rev)
            await self._delete("expire grace", self._k("grace", node))
            log.warning("node %s died during its grace period and nobody took over: ended its grace, "
                        "dropped %d unreclaimed client record(s)", node, dropped)
            del needs[node]
        return bool(needs)

    async def take_over(self, node_id: str) -> frozenset[bytes]:
        if node_id == self.node_id:
            raise RecoveryError("a node cannot take over its own clients")
        # The caller (Pacemaker, an operator) knows the node is fenced: end its membership now.
        await self._call("remove member", lambda c: c.delete(self._k("members", node_id)))
        return frozenset(await self._adopt_node(node_id, await self._all_records()))

    async def leave(self) -> None:
        if self._lease is not None:
            lease, self._lease = self._lease, None
            await self._call("leave", lambda c: c.revoke_lease(lease.id))
