"""What taking NFS byte-range locks in the kernel costs: LOCK+LOCKU pairs per second with
``server.kernel_locks`` off (the NFS lock table only) and on (plus one F_OFD_SETLK per LOCK
and per LOCKU), both servers up at once and measured in alternating rounds, because the
machine is shared and noisy.  Bounded in count and time.

Every worker is its own lock-owner on its own range of one file, so nothing conflicts and
each LOCK after the first goes through the owner's existing lock descriptor.

    .venv/bin/python bench/nfs_locks.py [--rounds 5] [--seconds 3] [--slots 16] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from securenfs.client.nfs4 import Nfs4Client
from securenfs.locking import ofd
from securenfs.locking.locks import LockType

MAX_PAIRS = 1_000_000


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (less sensitive to a busy machine than
    throughput: other processes' load stretches wall time, not this process's CPU time)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(port: int, seconds: float, slots: int, clients: int) -> tuple[float, int]:
    cs = []
    for _ in range(clients):
        c = await Nfs4Client.connect("127.0.0.1", port, slots=slots)
        await c.establish()
        cs.append(c)
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(c: Nfs4Client, n: int) -> None:
        nonlocal done
        root = await c.lookup_path("/data")
        f = await c.open(root, "file", owner=b"bench-open-%d" % n)
        sid = await c.lock(f, n * 10, 5, lock_owner=b"bench-%d" % n)
        sid = await c.locku(f.fh, sid, n * 10, 5)
        while time.monotonic() < deadline and done < MAX_PAIRS:
            sid = await c.lock(f, n * 10, 5, lock_stateid=sid)
            sid = await c.locku(f.fh, sid, n * 10, 5)
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker(c, i * slots + j) for i, c in enumerate(cs) for j in range(slots)))
    dt = time.monotonic() - t0
    for c in cs:
        await c.close()
    return done / dt, done


def syscall_cost(tmp: Path, pairs: int = 200_000) -> float:
    """Microseconds per F_OFD_SETLK lock + unlock pair from Python (what the server adds to a
    LOCK+LOCKU pair), on a file of the same file system."""
    p = tmp / "syscall"
    p.write_bytes(b"\0")
    fd = os.open(p, os.O_RDWR)
    try:
        t0 = time.perf_counter()
        for _ in range(pairs):
            ofd.set_lock(fd, LockType.WRITE_LT, 0, 5)
            ofd.unlock(fd, 0, 5)
        return (time.perf_counter() - t0) / pairs * 1e6
    finally:
        os.close(fd)


def start_server(tmp: Path, kernel_locks: bool) -> tuple[subprocess.Popen[bytes], int]:
    """The real server as its own process (client and server do not share one GIL)."""
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    (data / "file").write_bytes(b"\0" * 4096)
    name = "on" if kernel_locks else "off"
    conf = tmp / f"{name}.toml"
    conf.write_text(f"[server]\nkernel_locks = {'true' if kernel_locks else 'false'}\n")
    ready = tmp / f"ready-{name}"
    proc = subprocess.Popen([sys.executable, "-m", "securenfs", "serve", "--config", str(conf), "--no-preflight",
                             "--listen", "127.0.0.1:0", "--state-dir", str(tmp / f"state-{name}"),
                             "--export", f"{data}:/data:sec=sys:no_root_squash",
                             "--ready-file", str(ready), "--log-level", "WARNING"],
                            cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return proc, int(ready.read_text().split()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--clients", type=int, default=2)
    a = ap.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    print(f"server: its own process; load generator: this process; {os.cpu_count()} CPUs; "
          f"{a.clients} client(s) x {a.slots} slots, {a.rounds} alternating rounds of {a.seconds} s")
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"F_OFD_SETLK lock+unlock from Python: {syscall_cost(Path(tmp)):.2f} us per pair")
        servers = {name: start_server(Path(tmp), name == "on") for name in ("off", "on")}
        try:
            for r in range(min(a.rounds, 50)):
                order = ("off", "on") if r % 2 == 0 else ("on", "off")
                for name in order:
                    proc, port = servers[name]
                    c0 = cpu_seconds(proc.pid)
                    rate, pairs = run(measure(port, a.seconds, a.slots, a.clients))
                    us = (cpu_seconds(proc.pid) - c0) / max(pairs, 1) * 1e6
                    rates[name].append(rate)
                    cpu[name].append(us)
                    print(f"round {r + 1} kernel_locks={name:3s} {rate:8.0f} LOCK+LOCKU pairs/s, "
                          f"server CPU {us:6.1f} us per pair")
        finally:
            for proc, _port in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    for name in ("off", "on"):
        v = rates[name]
        print(f"kernel_locks={name:3s} median {statistics.median(v):8.0f} pairs/s  (min {min(v):.0f}, max {max(v):.0f}); "
              f"server CPU per pair median {statistics.median(cpu[name]):.1f} us "
              f"(min {min(cpu[name]):.1f}, max {max(cpu[name]):.1f})")
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    print(f"on/off per round: median {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
