"""Restart and failover of the real server process while clients hold opens and locks
(RFC 8881 §8.4.2, §18.16.3 CLAIM_PREVIOUS, §18.10.3 LOCK reclaim, §18.51 RECLAIM_COMPLETE).

Every test runs ``python -m securenfs serve`` as its own process and restarts it on the same
port and state directory, by kill -9 or by a clean stop (SIGTERM).  Grace is kept short by
configuration (15 s, lease 10 s) and the tests prove that it ends early rather than wait it out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from securenfs.admin.socket import query
from securenfs.client.nfs4 import ANON_STATEID, Nfs4Client, OpenFile
from securenfs.client.rpc import AuthSys, RpcClient
from securenfs.nfs4.xdr4 import FILE_SYNC4
from securenfs.proto.constants import ExchgIdFlag, Stat
from tests.support.nfsserver import run, status_of

GRACE = 15
LEASE = 10
ALL_BACK = "every recorded client reclaimed or is gone"


class RecoveryProcess:
    """One ``securenfs serve`` process with a config file; restartable on the same port."""

    def __init__(self, tmp: Path, name: str = "node", *, share: Path | None = None, recovery: str = "",
                 grace: int = GRACE, lease: int = LEASE):
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.share = share or tmp / "share"
        self.share.mkdir(exist_ok=True)
        self.state = self.dir / "state"
        self.config = self.dir / "securenfs.toml"
        self.config.write_text(
            "[server]\n"
            'server_owner = "recovery-test"\nserver_scope = "recovery-test-scope"\n'
            f"lease_time = {lease}\ngrace_time = {grace}\nthreads = 4\n"
            f"\n[recovery]\n{recovery}\n")
        self.log = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, *, expect_failure: bool = False) -> int:
        ready = self.dir / "ready"
        ready.unlink(missing_ok=True)
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "securenfs", "serve", "--config", str(self.config), "--no-preflight",
                 "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(self.state),
                 "--export", f"{self.share}:/share:sec=sys:no_root_squash", "--ready-file", str(ready)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text().strip():
                assert not expect_failure, "the server started although it should refuse to"
                self.port = int(ready.read_text().split()[1])
                return self.port
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                if expect_failure:
                    return code
                raise AssertionError(f"server exited early ({code}): {self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError("server did not become ready")

    def kill(self) -> None:
        """kill -9: nothing flushed by the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> float:
        """Clean stop (SIGTERM); returns how long it took."""
        t = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(20) == 0, self.log.read_text()[-3000:]
        self.proc = None
        return time.monotonic() - t

    def status(self) -> dict[str, Any]:
        return query(self.state / "admin.sock")["grace"]  # type: ignore[no-any-return]

    def wait_grace_over(self, timeout: float = GRACE) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st["state"] == "normal":
                return st
            time.sleep(0.1)
        raise AssertionError(f"grace did not end: {self.status()}")


async def connect(port: int, owner: bytes | None = None, verifier: bytes | None = None) -> Nfs4Client:
    c = Nfs4Client(await RpcClient.connect("127.0.0.1", port), AuthSys(0, 0),
                   owner=owner or b"recovery-test-" + uuid.uuid4().hex.encode())
    if verifier is not None:
        c.verifier = verifier  # the same client instance: its verifier survives a server restart
    return c


async def holder(port: int, name: str, data: bytes, offset: int) -> tuple[Nfs4Client, OpenFile, bytes]:
    """A client that writes ``data`` FILE_SYNC to ``name`` and write-locks it from ``offset``."""
    c = await connect(port)
    root = await c.mount("/share")
    f = await c.open(root, name, create=True)
    w = await c.write(f.fh, 0, data, f.stateid, stable=FILE_SYNC4)
    assert w.committed == FILE_SYNC4
    await c.lock(f, offset, 100)
    return c, f, root


async def come_back(port: int, old: Nfs4Client) -> Nfs4Client:
    """What a client does after the server restarted: its client id is stale, so EXCHANGE_ID
    and CREATE_SESSION again (same owner, same verifier)."""
    c = await connect(port, old.owner, old.verifier)
    c.clientid, c.exchange = old.clientid, old.exchange
    assert await status_of(c.create_session()) == Stat.STALE_CLIENTID
    res = await c.exchange_id()
    assert res.clientid != old.clientid and not res.flags & ExchgIdFlag.CONFIRMED_R
    await c.create_session()
    return c


async def reclaim(c: Nfs4Client, f: OpenFile, offset: int) -> OpenFile:
    g = await c.reclaim_open(f.fh)
    await c.reclaim_lock(g, offset, 100)
    return g


async def ghosts(port: int, n: int) -> list[Nfs4Client]:
    """Clients that mount (EXCHANGE_ID, CREATE_SESSION, RECLAIM_COMPLETE, lookups) and open
    nothing."""
    out = []
    for _ in range(n):
        c = await connect(port)
        await c.mount("/share")
        out.append(c)
    return out


def crash_after_holder(srv: RecoveryProcess, name: str, idle: int = 0) -> tuple[Nfs4Client, OpenFile]:
    """``idle`` clients that hold nothing and one that holds an open and a lock of ``name``;
    then kill -9 and start again."""
    async def before() -> tuple[Nfs4Client, OpenFile]:
        await ghosts(srv.port, idle)
        a, fa, _ = await holder(srv.port, name, name.encode(), 0)
        await a.close()
        return a, fa

    a, fa = run(before())
    srv.kill()
    srv.start()
    return a, fa


@pytest.mark.parametrize("how", ["kill -9", "clean stop"])
def test_clients_reclaim_opens_and_locks_after_restart(tmp_path: Path, how: str) -> None:
    srv = RecoveryProcess(tmp_path)
    srv.start()
    try:
        async def before() -> tuple[Any, ...]:
            a, fa, _ = await holder(srv.port, "a", b"data of A, FILE_SYNC", 0)
            b, fb, _ = await holder(srv.port, "b", b"data of B, FILE_SYNC", 0)
            # A client that said goodbye (DESTROY_CLIENTID) may not reclaim after the restart.
            gone = await connect(srv.port)
            await gone.mount("/share")
            await gone.destroy_session()
            await gone.destroy_clientid()
            for c in (a, b, gone):
                await c.close()
            return a, fa, b, fb, gone

        a, fa, b, fb, gone = run(before())
        st = srv.status()
        assert st["state"] == "normal"
        if how == "kill -9":
            srv.kill()
        else:
            # Clean and fast: no waiting out leases.
            assert srv.stop() < LEASE
        assert (srv.share / "a").read_bytes() == b"data of A, FILE_SYNC"
        srv.start()
        st = srv.status()
        assert st["state"] == "in_grace" and st["clients_expected"] == 2
        assert len(st["clients_to_reclaim"]) == 2 and 0 < st["seconds_left"] <= GRACE

        async def during() -> None:
            # A new client is held off: no new opens or locks, no I/O outside an open.
            n = await connect(srv.port)
            nroot = await n.mount("/share")
            assert await status_of(n.open(nroot, "a")) == Stat.GRACE
            assert await status_of(n.open(nroot, "new", create=True)) == Stat.GRACE
            assert await status_of(n.read(fa.fh, 0, 100, ANON_STATEID)) == Stat.GRACE
            assert await status_of(n.write(fa.fh, 0, b"x", ANON_STATEID)) == Stat.GRACE
            # ... and, after its RECLAIM_COMPLETE, no reclaim either.
            assert await status_of(n.reclaim_open(fa.fh)) == Stat.NO_GRACE
            # A client never recorded, and the one that destroyed its client id, cannot reclaim.
            stranger = await connect(srv.port)
            await stranger.establish()
            assert await status_of(stranger.reclaim_open(fa.fh)) == Stat.RECLAIM_BAD
            g = await connect(srv.port, gone.owner, gone.verifier)
            await g.establish()
            assert await status_of(g.reclaim_open(fb.fh)) == Stat.RECLAIM_BAD

            # A comes back: new client id, reclaims its open and lock, reads its data.
            a2 = await come_back(srv.port, a)
            ga = await reclaim(a2, fa, 0)
            r = await a2.read(ga.fh, 0, 100, ga.stateid)
            assert r.data == b"data of A, FILE_SYNC"
            await a2.reclaim_complete()
            assert await status_of(a2.reclaim_open(fa.fh)) == Stat.NO_GRACE  # after its RECLAIM_COMPLETE
            st = srv.status()
            assert st["state"] == "in_grace" and len(st["clients_to_reclaim"]) == 1
            assert await status_of(n.open(nroot, "a")) == Stat.GRACE

            b2 = await come_back(srv.port, b)
            gb = await reclaim(b2, fb, 0)
            await b2.reclaim_complete()

            # Everyone recorded is back: grace ends at once, not after 15 s.
            st = await asyncio.to_thread(srv.wait_grace_over, 3.0)
            assert st["ended"] == ALL_BACK and st["clients_reclaimed"] == 2 and st["clients_to_reclaim"] == []
            # The reclaimed locks hold against others; new state is granted elsewhere.
            f = await n.open(nroot, "a")
            assert await status_of(n.lock(f, 50, 10)) == Stat.DENIED
            await n.lock(f, 200, 10)
            assert (await n.read(fb.fh, 0, 100)).data == b"data of B, FILE_SYNC"
            # A reclaim after grace: NFS4ERR_NO_GRACE.
            late = await connect(srv.port, stranger.owner)
            await late.establish()
            assert await status_of(late.reclaim_open(fa.fh)) == Stat.NO_GRACE
            assert await status_of(late.reclaim_lock(gb, 0, 10)) == Stat.NO_GRACE
            for c in (n, stranger, g, a2, b2, late):
                await c.close()

        run(during())
    finally:
        srv.kill()


def test_grace_runs_to_its_end_when_a_recorded_client_does_not_come_back(tmp_path: Path) -> None:
    srv = RecoveryProcess(tmp_path, grace=6, lease=5)
    srv.start()
    try:
        a, fa = crash_after_holder(srv, "a")
        st = srv.wait_grace_over(12)
        assert st["ended"] == "grace time elapsed"
        srv.kill()
        srv.start()

        async def after() -> None:
            # The client that missed the grace period lost its right to reclaim (RFC 8881 §8.4.3),
            # and nobody is waited for any more: new state at once.
            assert srv.status()["state"] == "normal"
            c = await come_back(srv.port, a)
            assert await status_of(c.reclaim_open(fa.fh)) == Stat.NO_GRACE
            await c.reclaim_complete()
            root = await c.lookup_path("/share")
            await c.open(root, "a")
            await c.close()

        run(after())
    finally:
        srv.kill()


def test_no_new_opens_or_locks_before_reclaim_complete(tmp_path: Path) -> None:
    # RFC 8881 §18.51.3: "Whenever a client establishes a new client ID and before it does the
    # first non-reclaim operation that obtains a lock, it MUST send a RECLAIM_COMPLETE [...]
    # If non-reclaim locking operations are done before the RECLAIM_COMPLETE, an
    # NFS4ERR_GRACE error will be returned."  Clients that sent it, and reclaims, go on.
    srv = RecoveryProcess(tmp_path, grace=6, lease=5)
    srv.start()
    try:
        async def first() -> tuple[Nfs4Client, OpenFile]:
            a, fa, root = await holder(srv.port, "a", b"A", 0)
            # No client was recorded before this start: grace is over, and still a client
            # without RECLAIM_COMPLETE gets no new open (the one that sent it, above, did).
            m = await connect(srv.port)
            await m.establish()
            assert await status_of(m.open(root, "m", create=True)) == Stat.GRACE
            assert (await m.lockt(fa.fh, 500, 10)).status == 0  # LOCKT takes no lock
            await m.reclaim_complete()
            fm = await m.open(root, "m", create=True)
            await m.lock(fm, 0, 10)
            for c in (a, m):
                await c.close()
            return a, fa

        a, fa = run(first())
        assert srv.status()["state"] == "normal"
        srv.kill()
        srv.start()

        async def second() -> None:
            a2 = await come_back(srv.port, a)
            ga = await a2.reclaim_open(fa.fh)  # reclaims need no RECLAIM_COMPLETE
            # A is expected and has not sent RECLAIM_COMPLETE: grace runs to its end.
            await asyncio.to_thread(srv.wait_grace_over, 12)
            root = await a2.lookup_path("/share")
            assert await status_of(a2.lock(ga, 0, 10)) == Stat.GRACE
            assert await status_of(a2.open(root, "other", create=True)) == Stat.GRACE
            await a2.reclaim_complete()
            await a2.lock(ga, 0, 10)
            await a2.open(root, "other", create=True)
            await a2.close()

        run(second())
    finally:
        srv.kill()


NO_CLIENTS = "no client was recorded before the start"


def test_crash_with_only_stateless_clients_ends_grace_at_once(tmp_path: Path) -> None:
    """RFC 8881 §8.4.2.1: the server records what it needs "to determine whether a client
    ... held state" before the restart.  Clients that never opened anything have nothing to
    reclaim, so after kill -9 the grace period waits for none of them, and they are not
    written to the store at all (no fsync per mount)."""
    srv = RecoveryProcess(tmp_path, grace=GRACE, lease=LEASE)
    srv.start()
    try:
        idle = run(ghosts(srv.port, 5))
        assert srv.status()["clients_expected"] == 0
        srv.kill()
        srv.start()
        st = srv.status()
        assert st["state"] == "normal" and st["ended"] == NO_CLIENTS, st
        assert st["clients_expected"] == 0

        async def after() -> None:
            # New state at once; an idle client of before the crash comes back as new.
            c = await come_back(srv.port, idle[0])
            await c.reclaim_complete()
            root = await c.lookup_path("/share")
            await c.open(root, "new", create=True)
            await c.close()

        run(after())
    finally:
        srv.kill()


def test_crash_with_ghosts_and_one_holder_waits_for_the_holder_only(tmp_path: Path) -> None:
    srv = RecoveryProcess(tmp_path, grace=GRACE, lease=LEASE)
    srv.start()
    try:
        a, fa = crash_after_holder(srv, "held", idle=3)
        st = srv.status()
        # Only the client that held an open is waited for (not the three that held nothing).
        assert st["state"] == "in_grace" and st["clients_expected"] == 1, st

        async def during() -> None:
            newcomer = await connect(srv.port)
            await newcomer.mount("/share")
            root = await newcomer.lookup_path("/share")
            assert await status_of(newcomer.open(root, "other", create=True)) == Stat.GRACE
            c = await come_back(srv.port, a)
            await reclaim(c, fa, 0)
            await c.reclaim_complete()
            await c.close()
            await newcomer.close()

        run(during())
        assert srv.wait_grace_over(5)["ended"] == ALL_BACK
    finally:
        srv.kill()


def test_corrupt_recovery_store_refuses_to_start(tmp_path: Path) -> None:
    srv = RecoveryProcess(tmp_path)
    srv.start()
    srv.stop()
    db = srv.state / "recovery.db"
    db.write_bytes(b"this is not an SQLite database" * 100)
    assert srv.start(expect_failure=True) == 2
    log = srv.log.read_text()
    assert "recovery store" in log and "corrupt" in log and str(db) in log
    assert "Traceback" not in log


def test_unusable_recovery_store_refuses_to_start(tmp_path: Path) -> None:
    srv = RecoveryProcess(tmp_path)
    srv.state.mkdir(parents=True)
    (srv.state / "recovery.db").mkdir()  # cannot be opened as a database file
    assert srv.start(expect_failure=True) == 2
    log = srv.log.read_text()
    assert "recovery store" in log and "cannot be written" in log and "Traceback" not in log


def test_bad_recovery_config_is_reported_with_the_key(tmp_path: Path) -> None:
    srv = RecoveryProcess(tmp_path, recovery='backend = "zookeeper"\n')
    assert srv.start(expect_failure=True) == 2
    log = srv.log.read_text()
    assert "recovery.backend" in log and "sqlite" in log and "Traceback" not in log


def test_etcd_unreachable_at_start_refuses_to_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    srv = RecoveryProcess(tmp_path, recovery=(
        f'backend = "etcd"\nnode_id = "a"\netcd_endpoints = ["127.0.0.1:{port}"]\netcd_timeout = 1\n'))
    assert srv.start(expect_failure=True) == 2
    log = srv.log.read_text()
    assert f"127.0.0.1:{port}" in log and "does not start" in log and "Traceback" not in log


def _etcd_recovery(cluster: Any, node: str, prefix: str) -> str:
    eps = ", ".join(f'"{e}"' for e in cluster.endpoints)
    return (f'backend = "etcd"\nnode_id = "{node}"\netcd_endpoints = [{eps}]\netcd_prefix = "{prefix}"\n'
            "member_ttl = 2\netcd_timeout = 1\n")


def test_cluster_failover_clients_reclaim_on_another_node(tmp_path: Path, etcd_cluster: Any) -> None:
    prefix = f"/securenfs-test-{uuid.uuid4().hex[:8]}"
    share = tmp_path / "share"
    a_node = RecoveryProcess(tmp_path, "a", share=share, recovery=_etcd_recovery(etcd_cluster, "a", prefix))
    b_node = RecoveryProcess(tmp_path, "b", share=share, recovery=_etcd_recovery(etcd_cluster, "b", prefix))
    a_node.start()
    try:
        async def before() -> tuple[Any, ...]:
            x, fx, _ = await holder(a_node.port, "x", b"written on node A", 0)
            y, fy, _ = await holder(a_node.port, "y", b"also on node A", 0)
            await x.close()
            await y.close()
            return x, fx, y, fy

        x, fx, y, fy = run(before())
        a_node.kill()
        # The shared storage moves with the service: the same handle key on node B.
        b_node.state.mkdir(parents=True)
        key = b_node.state / "handle.key"
        key.write_bytes((a_node.state / "handle.key").read_bytes())
        key.chmod(0o600)
        time.sleep(3)  # node A's membership (member_ttl 2 s) runs out
        b_node.start()
        st = b_node.status()
        assert st["state"] == "in_grace" and st["clients_expected"] == 2 and st["node"] == "b"

        async def on_b() -> None:
            n = await connect(b_node.port)
            nroot = await n.mount("/share")
            assert await status_of(n.open(nroot, "z", create=True)) == Stat.GRACE
            x2 = await come_back(b_node.port, x)
            gx = await reclaim(x2, fx, 0)
            assert (await x2.read(gx.fh, 0, 100, gx.stateid)).data == b"written on node A"
            await x2.reclaim_complete()
            assert await status_of(n.open(nroot, "z", create=True)) == Stat.GRACE
            y2 = await come_back(b_node.port, y)
            await reclaim(y2, fy, 0)
            await y2.reclaim_complete()
            st = await asyncio.to_thread(b_node.wait_grace_over, 5.0)
            assert st["ended"] == ALL_BACK
            f = await n.open(nroot, "x")
            assert await status_of(n.lock(f, 10, 10)) == Stat.DENIED  # X's reclaimed lock
            await n.open(nroot, "z", create=True)
            for c in (n, x2, y2):
                await c.close()

        run(on_b())
    finally:
        a_node.kill()
        b_node.kill()


def test_etcd_outage_mid_run_delays_new_state(tmp_path: Path, etcd_cluster: Any) -> None:
    prefix = f"/securenfs-test-{uuid.uuid4().hex[:8]}"
    srv = RecoveryProcess(tmp_path, "a", recovery=_etcd_recovery(etcd_cluster, "a", prefix))
    srv.start()
    restarted = False

    def restart_members() -> None:
        nonlocal restarted
        if not restarted:
            restarted = True
            etcd_cluster.start_member(1)
            etcd_cluster.start_member(2)
            etcd_cluster.wait_healthy()

    try:
        etcd_cluster.stop_member(1)
        etcd_cluster.stop_member(2)  # quorum lost: no write can be made durable

        async def scenario() -> None:
            c = await connect(srv.port)
            await c.mount("/share")  # holding nothing, a client needs no record
            root = await c.lookup_path("/share")
            # No open or lock without a durable record: NFS4ERR_DELAY, retry later.
            assert await status_of(c.open(root, "during-outage", create=True)) == Stat.DELAY
            await asyncio.get_running_loop().run_in_executor(None, restart_members)
            for _ in range(50):
                if await status_of(c.open(root, "after-outage", create=True)) == 0:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("OPEN still refused after etcd came back")
            await c.close()

        run(scenario())
        assert "gets no open or lock yet" in srv.log.read_text()
    finally:
        restart_members()
        srv.kill()


def test_status_human_view_shows_grace(tmp_path: Path) -> None:
    srv = RecoveryProcess(tmp_path)
    srv.start()
    try:
        async def before() -> None:
            a, _, _ = await holder(srv.port, "a", b"A", 0)
            await a.close()

        run(before())
        srv.kill()
        srv.start()
        env = dict(os.environ)
        out = subprocess.run([sys.executable, "-m", "securenfs", "status", "--state-dir", str(srv.state)],
                             check=False, capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "grace: in_grace" in out.stdout and "clients still to reclaim: 1" in out.stdout
        assert "recovery-test-" in out.stdout  # the client's owner, readable
    finally:
        srv.kill()
