"""The etcd recovery backend against a real 3-member etcd cluster on 127.0.0.1: shared
client records, cluster-wide grace, failover to another node, etcd outages."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from securenfs.recovery import Decision, GraceManager, Recovery, RecoveryError, RecoveryUnavailable
from securenfs.recovery.etcd import EtcdRecoveryStore
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]

NODE_A = r"""
import asyncio, sys
from securenfs.recovery import GraceManager, Recovery
from securenfs.recovery.etcd import EtcdRecoveryStore

async def main():
    endpoints, prefix, n = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
    store = EtcdRecoveryStore("node-a", endpoints, prefix=prefix, member_ttl=2, timeout=2, grace_time=30)
    rec = Recovery(store, GraceManager(30), cluster=store, tick=0.05)
    await rec.start(1)
    for i in range(n):
        await rec.client_confirmed(b"client-a-%d" % i, "krb5:nfs/a%d@EXAMPLE.COM" % i)
        print("durable", i, flush=True)
    print("ready", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def node(cluster, name: str, prefix: str, *, ttl: int = 2, grace: float = 30, endpoints=None):
    store = EtcdRecoveryStore(name, endpoints or cluster.endpoints, prefix=prefix, member_ttl=ttl, timeout=1,
                              grace_time=grace)
    return Recovery(store, GraceManager(grace), cluster=store, tick=0.05)


async def until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
def prefix() -> str:
    return f"/securenfs-test/{uuid.uuid4().hex}"


def test_failover_to_another_node_with_cluster_grace(etcd_cluster, prefix):
    async def scenario():
        # Node C runs all along: no clients of its own, so its grace ends at once.
        c = node(etcd_cluster, "node-c", prefix)
        await c.start(5)
        assert await until(lambda: c.grace.check_new_state() is Decision.OK)

        # Node A (another process) confirms three clients, then dies with kill -9.
        # A real process, so its death is a real kill -9 (blocking reads are fine in a test).
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", NODE_A, ",".join(etcd_cluster.endpoints), prefix, "3"],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line.strip())
                if line.startswith("ready"):
                    break
            assert lines[-1] == "ready", lines
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        # Its membership expires with its lease.
        assert await until(lambda: _not_member(c.store, "node-a"), timeout=15)

        # Node B, same server identity, starts: A's clients may reclaim here.
        b = node(etcd_cluster, "node-b", prefix)
        await b.start(1)
        st = b.status()
        assert st["state"] == "in_grace" and st["clients_expected"] == 3
        assert "client-a-0 (krb5:nfs/a0@EXAMPLE.COM)" in st["clients_missing"]
        assert b.grace.check_reclaim(b"client-a-0", False) is Decision.OK
        assert b.grace.check_reclaim(b"someone-else", False) is Decision.RECLAIM_BAD
        # A new client is held off on every node while the cluster is in grace.
        assert b.grace.check_new_state() is Decision.GRACE
        assert await until(lambda: c.grace.check_new_state() is Decision.GRACE)
        assert c.grace.check_reclaim(b"client-a-0", False) is Decision.NO_GRACE  # not C's client

        # Two clients reclaim, the third is gone: grace ends early, cluster-wide.
        for i in (0, 1):
            await b.client_confirmed(f"client-a-{i}".encode(), f"krb5:nfs/a{i}@EXAMPLE.COM")
            b.grace.note_reclaim(b"client-a-%d" % i)
            b.reclaim_complete(b"client-a-%d" % i)
        await asyncio.sleep(0.3)
        assert b.grace.check_new_state() is Decision.GRACE  # client-a-2 still expected
        await b.client_removed(b"client-a-2")
        assert await until(lambda: b.grace.check_new_state() is Decision.OK)
        assert await until(lambda: c.grace.check_new_state() is Decision.OK)
        assert b.grace.check_reclaim(b"client-a-0", False) is Decision.NO_GRACE
        recs = {r.owner_id: r for r in await b.store.records()}
        assert set(recs) == {b"client-a-0", b"client-a-1"}
        assert all(r.node == "node-b" and r.epoch == 1 for r in recs.values())
        await b.stop()
        await c.stop()

    asyncio.run(scenario())


async def _not_member(store: EtcdRecoveryStore, name: str) -> bool:
    return name not in await store.members()


def test_take_over_a_fenced_node_at_once(etcd_cluster, prefix):
    async def scenario():
        a = node(etcd_cluster, "node-a", prefix, ttl=60)
        await a.start(1)
        await a.client_confirmed(b"x1", None)
        await a.client_confirmed(b"x2", "krb5:nfs/x2@EX")
        await a.store.close()  # dies: membership still live for a minute
        b = node(etcd_cluster, "node-b", prefix)
        await b.start(1)
        assert await until(lambda: b.grace.check_new_state() is Decision.OK)
        assert b.grace.check_reclaim(b"x1", False) is Decision.NO_GRACE  # not ours (yet)
        assert await b.take_over("node-a") == 2
        assert "node-a" not in await b.store.members()
        assert b.grace.check_reclaim(b"x1", False) is Decision.OK
        assert b.grace.check_new_state() is Decision.GRACE
        b.reclaim_complete(b"x1")
        await b.client_removed(b"x2")
        assert await until(lambda: b.grace.check_new_state() is Decision.OK)
        await b.stop()

    asyncio.run(scenario())


def test_node_dead_in_grace_without_takeover_releases_the_cluster(etcd_cluster, prefix):
    async def scenario():
        a = node(etcd_cluster, "node-a", prefix, grace=1)
        await a.start(1)
        await a.client_confirmed(b"y1", None)
        await a.stop()
        a = node(etcd_cluster, "node-a", prefix, grace=1)
        await a.start(2)  # y1 may reclaim; node A then dies in grace
        assert a.grace.may_reclaim(b"y1")
        a.store._keepalive.cancel()  # type: ignore[union-attr]
        await a.store.leave()
        await a.store.close()
        a._task.cancel()  # type: ignore[union-attr]
        c = node(etcd_cluster, "node-c", prefix, grace=1)
        await c.start(1)
        await asyncio.sleep(0.3)
        # A's need keeps the cluster in grace until its deadline (2 x grace) passes.
        assert c.grace.check_new_state() is Decision.GRACE
        assert await until(lambda: c.grace.check_new_state() is Decision.OK, timeout=10)
        assert await c.store.records() == []  # y1 did not reclaim in time: dropped
        await c.stop()

    asyncio.run(scenario())


def test_etcd_unreachable_at_start_refuses_to_start(prefix):
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]

    async def scenario():
        store = EtcdRecoveryStore("node-a", dead, prefix=prefix, timeout=1)
        r = Recovery(store, GraceManager(30), cluster=store)
        with pytest.raises(RecoveryError) as ei:
            await r.start(1)
        return str(ei.value)

    msg = asyncio.run(scenario())
    assert dead[0] in msg and dead[1] in msg and "endpoint health" in msg


def test_etcd_outage_mid_run_confirms_no_client_until_it_is_back(etcd_cluster, prefix):
    async def scenario():
        r = node(etcd_cluster, "node-a", prefix, ttl=30)
        await r.start(1)
        await r.client_confirmed(b"before", None)
        etcd_cluster.stop_member(0)
        etcd_cluster.stop_member(1)  # quorum lost
        try:
            with pytest.raises(RecoveryUnavailable, match="etcd unreachable"):
                await r.client_confirmed(b"during", None)
            # The background task keeps going (cluster state unknown: last answer kept).
            await asyncio.sleep(0.2)
            assert r.status()["node"] == "node-a"
        finally:
            etcd_cluster.start_member(0)
            etcd_cluster.start_member(1)
            etcd_cluster.wait_healthy()
        await r.client_confirmed(b"after", None)
        owners = {x.owner_id for x in await r.store.records()}
        assert {b"before", b"after"} <= owners
        await r.stop()

    asyncio.run(scenario())
