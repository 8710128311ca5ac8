"""Memory and records across many abandoned clients.

A real ``securenfs serve`` process with a short lease (5 s) and the SQLite recovery store.
Each round creates ``--clients`` clients that do EXCHANGE_ID and CREATE_SESSION and then
vanish (no DESTROY_SESSION, no DESTROY_CLIENTID), the way a crashed laptop or a rebooted VM
does; one in ``--open-every`` opens and closes a file first, so it is recorded in the store.  The round waits until the laundromat has removed them and reports the server's RSS
before, at the peak and after expiry, the client records left in recovery.db, and the time
each step took.  RSS after the second round about equal to after the first is what
"flat" means: what the first round allocated is reused, nothing accumulates.

    .venv/bin/python bench/ghost_clients.py [--clients 100000] [--rounds 2] [--open-every 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from securenfs.admin.socket import query
from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import AuthSys, RpcClient

LEASE = 5


class GhostServer:
    """``securenfs serve`` with a short lease, room for ``max_clients`` and the logs at WARNING."""

    def __init__(self, tmp: Path, max_clients: int, lease: int = LEASE):
        self.tmp = tmp
        self.share = tmp / "share"
        self.share.mkdir(exist_ok=True)
        self.state = tmp / "state"
        self.cfg = tmp / "securenfs.toml"
        self.cfg.write_text(f'[server]\nserver_owner = "ghosts"\nlease_time = {lease}\ngrace_time = {lease}\n'
                            f"threads = 4\nmax_clients = {max_clients}\n")
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        ready = self.tmp / "ready"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "securenfs", "serve", "--config", str(self.cfg), "--no-preflight",
                 "--listen", "127.0.0.1:0", "--state-dir", str(self.state),
                 "--export", f"{self.share}:/share:sec=sys:no_root_squash", "--ready-file", str(ready), "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)
        deadline = time.monotonic() + 30
        while not (ready.exists() and ready.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(ready.read_text().split()[1])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.proc = None

    def rss(self) -> int:
        """Resident set size of the server process, bytes."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def clients(self) -> dict[str, Any]:
        return query(self.state / "admin.sock")["clients"]  # type: ignore[no-any-return]

    def records(self) -> int:
        """Client records in the recovery store (read beside the server: WAL allows it)."""
        db = sqlite3.connect(f"file:{self.state / 'recovery.db'}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM clients").fetchone()[0])
        finally:
            db.close()


async def make_ghosts(port: int, n: int, prefix: bytes, *, open_every: int = 0, connections: int = 8,
                      in_flight: int = 32) -> None:
    """``n`` clients that each do EXCHANGE_ID + CREATE_SESSION and are never heard of
    again; every ``open_every``-th one first opens and closes a file (so it held state once
    and was recorded in the store).  The connections close at the end (their session
    bindings go with them)."""
    rpcs = [await RpcClient.connect("127.0.0.1", port) for _ in range(connections)]
    next_i = 0

    async def worker(rpc: RpcClient) -> None:
        nonlocal next_i
        while next_i < n:
            i, next_i = next_i, next_i + 1
            c = Nfs4Client(rpc, AuthSys(0, 0), owner=b"%s-%d" % (prefix, i))
            await c.establish()
            if open_every and i % open_every == 0:
                await c.reclaim_complete()
                f = await c.open(await c.lookup_path("/share"), f"{prefix.decode()}-{i}", create=True)
                await c.close_file(f)

    try:
        await asyncio.gather(*(worker(rpcs[k % connections]) for k in range(connections * in_flight)))
    finally:
        for r in rpcs:
            await r.close()


@dataclass
class Round:
    clients: int
    create_s: float
    rss_before_mib: float
    rss_peak_mib: float
    clients_peak: int
    records_peak: int
    expire_s: float
    rss_after_mib: float
    records_after: int
    clients_after: int
    sessions_after: int
    bound_connections_after: int


def run_round(srv: GhostServer, n: int, tag: bytes, timeout: float, open_every: int = 10) -> Round:
    """One round of ``n`` ghosts; raises TimeoutError if they are not gone in ``timeout`` s."""
    mib = 1 << 20
    before = srv.rss()
    t = time.perf_counter()
    asyncio.run(make_ghosts(srv.port, n, tag, open_every=open_every))
    created = time.perf_counter() - t
    peak, clients_peak, records_peak = srv.rss(), srv.clients()["client_owners"], srv.records()
    deadline = time.monotonic() + timeout
    while True:
        st = srv.clients()
        if st["client_owners"] == 0 and srv.records() == 0:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"ghosts not gone after {timeout:.0f} s: {st}, records {srv.records()}")
        time.sleep(0.2)
    expired = time.perf_counter() - t - created
    return Round(n, round(created, 1), round(before / mib, 1), round(peak / mib, 1), clients_peak, records_peak,
                 round(expired, 1), round(srv.rss() / mib, 1), srv.records(), st["client_owners"],
                 st["sessions"], st["bound_connections"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--lease", type=int, default=LEASE,
                    help="lease seconds; longer than the creation time keeps every client alive at the peak")
    ap.add_argument("--open-every", type=int, default=10,
                    help="every N-th client opens and closes a file first (recorded in the store)")
    ap.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ghosts-") as d:
        srv = GhostServer(Path(d), max_clients=args.clients * 2, lease=args.lease)
        srv.start()
        try:
            rounds = [run_round(srv, args.clients, b"ghost-r%d" % r, timeout=max(120.0, args.clients / 50) + args.lease,
                                open_every=args.open_every) for r in range(args.rounds)]
        finally:
            srv.stop()
    if args.json:
        print(json.dumps([asdict(r) for r in rounds], indent=2))
        return
    print(f"lease {args.lease} s; 'live' and 'records' are counted when the last client of the round is made")
    print(f"{'round':>5} {'clients':>8} {'create s':>9} {'RSS before':>11} {'RSS peak':>9} {'live':>7} {'records':>8} "
          f"{'expire s':>9} {'RSS after':>10} {'records left':>13} {'clients left':>13}")
    for i, r in enumerate(rounds, 1):
        print(f"{i:>5} {r.clients:>8} {r.create_s:>9} {r.rss_before_mib:>9} M {r.rss_peak_mib:>7} M "
              f"{r.clients_peak:>7} {r.records_peak:>8} {r.expire_s:>9} {r.rss_after_mib:>8} M "
              f"{r.records_after:>13} {r.clients_after:>13}")


if __name__ == "__main__":
    main()
