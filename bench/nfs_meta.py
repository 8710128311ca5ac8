"""Metadata throughput of the NFSv4.1 server over loopback: GETATTR and LOOKUP+GETATTR
COMPOUNDs per second with many slots in flight.  Bounded in count and time.

    .venv/bin/python bench/nfs_meta.py [--seconds 5] [--slots 32] [--clients 2]
    .venv/bin/python bench/nfs_meta.py --metrics-ab 5 [--seconds 3]

``--metrics-ab N``: the cost of the Prometheus metrics (``server.metrics_listen``) on the
hot path: N rounds, each measuring PUTFH+GETATTR against a fresh server with metrics off and
one with them on (the order alternates between rounds); prints the medians, the spread and
the difference.
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

from securenfs.client.nfs4 import LINUX_GETATTR, Nfs4Client
from securenfs.nfs4.xdr4 import BitmapArgs, FhArgs, NameArgs
from securenfs.proto.constants import Op

MAX_CALLS = 2_000_000


async def measure(port: int, name: str, make_ops, seconds: float, slots: int, clients: int,  # type: ignore[no-untyped-def]
                  done_out: list[int] | None = None) -> float:
    cs = []
    for _ in range(clients):
        c = await Nfs4Client.connect("127.0.0.1", port, slots=slots)
        await c.establish()
        cs.append(c)
    fh = await cs[0].lookup_path("/data")
    ops = make_ops(fh)
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(c: Nfs4Client) -> None:
        nonlocal done
        while time.monotonic() < deadline and done < MAX_CALLS:
            await c.seq(ops)
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker(c) for c in cs for _ in range(slots)))
    dt = time.monotonic() - t0
    for c in cs:
        await c.close()
    rate = done / dt
    if done_out is not None:
        done_out.append(done)
    print(f"{name:28s} {rate:10.0f} compounds/s  ({done} in {dt:.1f} s, {clients} client(s) x {slots} slots)")
    return rate


def start_server(tmp: Path, metrics: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    """The real server as its own process (so client and server do not share one GIL)."""
    data = tmp / "data"
    data.mkdir()
    (data / "file").write_text("x")
    ready = tmp / "ready"
    conf = tmp / "securenfs.toml"
    conf.write_text('[server]\nmetrics_listen = "127.0.0.1:0"\n' if metrics else "")
    proc = subprocess.Popen([sys.executable, "-m", "securenfs", "serve", "--config", str(conf),
                             "--listen", "127.0.0.1:0",
                             "--state-dir", str(tmp / "state"), "--export", f"{data}:/data:sec=sys:no_root_squash",
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
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--metrics-ab", type=int, default=0, metavar="ROUNDS",
                    help="measure PUTFH+GETATTR with metrics off and on, alternating, ROUNDS times")
    a = ap.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    print(f"server: its own process; load generator: this process; {os.cpu_count()} CPUs")
    if a.metrics_ab:
        metrics_ab(run, a)
        return
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(Path(tmp))
        try:
            def getattr_ops(fh):
                return [(Op.PUTFH, FhArgs(fh)), (Op.GETATTR, BitmapArgs(LINUX_GETATTR))]
            def lookup_ops(fh):
                return [(Op.PUTFH, FhArgs(fh)), (Op.LOOKUP, NameArgs(b"file")),
                                                 (Op.GETATTR, BitmapArgs(LINUX_GETATTR))]
            run(measure(port, "PUTFH+GETATTR", getattr_ops, a.seconds, a.slots, a.clients))
            run(measure(port, "PUTFH+LOOKUP+GETATTR", lookup_ops, a.seconds, a.slots, a.clients))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def metrics_ab(run, a) -> None:  # type: ignore[no-untyped-def]
    def getattr_ops(fh):  # type: ignore[no-untyped-def]
        return [(Op.PUTFH, FhArgs(fh)), (Op.GETATTR, BitmapArgs(LINUX_GETATTR))]

    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for r in range(min(a.metrics_ab, 50)):
        for on in ((False, True) if r % 2 == 0 else (True, False)):
            with tempfile.TemporaryDirectory() as tmp:
                proc, port = start_server(Path(tmp), metrics=on)
                try:
                    done: list[int] = []
                    t0 = cpu_seconds(proc.pid)
                    rates[on].append(run(measure(port, f"metrics {'on ' if on else 'off'} round {r + 1}",
                                                 getattr_ops, a.seconds, a.slots, a.clients, done)))
                    # Server CPU per compound: far less sensitive to other load on a shared
                    # machine than the rate.
                    cpu[on].append((cpu_seconds(proc.pid) - t0) / done[0] * 1e6)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
    off, on_ = statistics.median(rates[False]), statistics.median(rates[True])
    for label, xs in (("off", rates[False]), ("on", rates[True])):
        print(f"metrics {label:3s}: median {statistics.median(xs):8.0f} compounds/s, "
              f"min {min(xs):8.0f}, max {max(xs):8.0f} ({len(xs)} runs)")
    print(f"difference of the medians: {100 * (on_ - off) / off:+.1f} %")
    for label, xs in (("off", cpu[False]), ("on", cpu[True])):
        print(f"server CPU per compound, metrics {label:3s}: median {statistics.median(xs):6.1f} us, "
              f"min {min(xs):6.1f}, max {max(xs):6.1f}")
    c_off, c_on = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(f"server CPU per compound, difference of the medians: {100 * (c_on - c_off) / c_off:+.1f} %")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
