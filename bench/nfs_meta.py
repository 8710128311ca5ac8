"""Metadata throughput of the NFSv4.1 server over loopback: GETATTR and LOOKUP+GETATTR
COMPOUNDs per second with many slots in flight.  Bounded in count and time.

    .venv/bin/python bench/nfs_meta.py [--seconds 5] [--slots 32] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
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


async def measure(port: int, name: str, make_ops, seconds: float, slots: int, clients: int) -> float:  # type: ignore[no-untyped-def]
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
    print(f"{name:28s} {rate:10.0f} compounds/s  ({done} in {dt:.1f} s, {clients} client(s) x {slots} slots)")
    return rate


def start_server(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The real server as its own process (so client and server do not share one GIL)."""
    data = tmp / "data"
    data.mkdir()
    (data / "file").write_text("x")
    ready = tmp / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0",
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
    a = ap.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    print(f"server: its own process; load generator: this process; {os.cpu_count()} CPUs")
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


if __name__ == "__main__":
    main()
