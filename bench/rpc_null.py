#!/usr/bin/env python3
"""NULL calls per second against securenfs, beside a minimal echo server with the same framing.

Both servers run as their own processes on loopback; the load generator (this process) keeps
1, 8 or 64 calls in flight on one connection and counts replies for a fixed time.  The echo
server parses the record marking and answers every call with a fixed 24-byte accepted reply:
that is the ceiling for an asyncio server on this machine.

    .venv/bin/python bench/rpc_null.py [--seconds 3] [--depths 1,8,64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from securenfs.rpc.auth import AuthSysParms, encode_auth_sys  # noqa: E402
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4  # noqa: E402
from securenfs.rpc.message import encode_opaque_auth  # noqa: E402

ECHO_SERVER = r'''
import asyncio, struct, sys
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    loop = asyncio.new_event_loop()
RM = struct.Struct(">I")
REPLY = struct.Struct(">IIIIIII")
class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t; self.buf = bytearray()
    def data_received(self, data):
        buf = self.buf; buf += data; pos = 0; out = []
        while len(buf) - pos >= 4:
            n = RM.unpack_from(buf, pos)[0] & 0x7FFFFFFF
            if len(buf) - pos - 4 < n: break
            xid = RM.unpack_from(buf, pos + 4)[0]
            out.append(REPLY.pack(0x80000018, xid, 1, 0, 0, 0, 0))
            pos += 4 + n
        if pos: del buf[:pos]
        if out: self.t.writelines(out)
async def main():
    srv = await loop.create_server(Echo, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.set_event_loop(loop)
loop.run_until_complete(main())
'''


class Load(asyncio.Protocol):
    def __init__(self, depth: int, deadline: float, done: asyncio.Future[int], auth: str = "none"):
        self.depth, self.deadline, self.done = depth, deadline, done
        self.buf = bytearray()
        self.count = 0
        self.xid = 0
        if auth == "sys":
            cred = encode_auth_sys(AuthSysParms(0, "bench", 1000, 1000, (1000, 10, 20)))
            hdr = struct.pack(">IIIIIII", 0, 0, 2, NFS_PROGRAM, NFS_V4, 0, 1) + encode_opaque_auth(0, cred)[4:]
            hdr += struct.pack(">II", 0, 0)
        else:
            hdr = struct.pack(">IIIIIIIIII", 0, 0, 2, NFS_PROGRAM, NFS_V4, 0, 0, 0, 0, 0)
        self.template = bytearray(struct.pack(">I", 0x80000000 | len(hdr)) + hdr)
        self.stopping = False
        self.outstanding = 0

    def call(self) -> bytes:
        self.xid += 1
        struct.pack_into(">I", self.template, 4, self.xid)
        return bytes(self.template)

    def connection_made(self, t: asyncio.BaseTransport) -> None:
        self.t = t
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.outstanding = self.depth
        t.writelines([self.call() for _ in range(self.depth)])  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        got = 0
        while len(buf) - pos >= 4:
            n = struct.unpack_from(">I", buf, pos)[0] & 0x7FFFFFFF
            if len(buf) - pos - 4 < n:
                break
            pos += 4 + n
            got += 1
        if pos:
            del buf[:pos]
        self.count += got
        self.outstanding -= got
        if not self.stopping and time.perf_counter() >= self.deadline:
            self.stopping = True
        if not self.stopping:
            self.outstanding += got
            self.t.writelines([self.call() for _ in range(got)])  # type: ignore[attr-defined]
        elif self.outstanding == 0 and not self.done.done():
            self.done.set_result(self.count)


async def measure(port: int, depth: int, seconds: float, auth: str = "none") -> float:
    loop = asyncio.get_running_loop()
    # warm-up
    fut: asyncio.Future[int] = loop.create_future()
    t, _ = await loop.create_connection(lambda: Load(depth, time.perf_counter() + 0.3, fut, auth), "127.0.0.1", port)
    await asyncio.wait_for(fut, 30)
    t.close()
    fut = loop.create_future()
    start = time.perf_counter()
    t, _ = await loop.create_connection(lambda: Load(depth, start + seconds, fut, auth), "127.0.0.1", port)
    n = await asyncio.wait_for(fut, seconds + 30)
    elapsed = time.perf_counter() - start
    t.close()
    return n / elapsed


def start_securenfs(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    share = tmp / "share"
    share.mkdir()
    ready = tmp / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0",
                             "--state-dir", str(tmp / "state"), "--export", f"{share}:/share:sec=sys",
                             "--ready-file", str(ready), "--log-level", "WARNING"], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("securenfs did not start")
        time.sleep(0.05)
    return proc, int(ready.read_text().split()[1])


def start_echo() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--depths", default="1,8,64")
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    try:
        import uvloop

        loop = uvloop.new_event_loop()
        loop_name = "uvloop"
    except ImportError:
        loop = asyncio.new_event_loop()
        loop_name = "asyncio"
    with tempfile.TemporaryDirectory() as d:
        snfs, sport = start_securenfs(Path(d))
        echo, eport = start_echo()
        try:
            rows = []
            for depth in depths:
                ceiling = loop.run_until_complete(measure(eport, depth, args.seconds))
                ours = loop.run_until_complete(measure(sport, depth, args.seconds))
                ours_sys = loop.run_until_complete(measure(sport, depth, args.seconds, "sys"))
                rows.append((depth, ours, ours_sys, ceiling))
        finally:
            for p in (snfs, echo):
                p.send_signal(signal.SIGTERM)
                p.wait(10)
    print(f"NULL calls/s, one connection, load generator on {loop_name}, {os.cpu_count()} CPUs, "
          f"{args.seconds:.0f} s per point")
    print("securenfs none: AUTH_NONE NULL (answered from the receive buffer); "
          "sys: AUTH_SYS NULL (full header decode and credential check)")
    print(f"{'in flight':>10} {'none':>10} {'sys':>10} {'echo ceiling':>13} {'none/ceil':>10} {'sys/ceil':>9}")
    for depth, ours, ours_sys, ceiling in rows:
        print(f"{depth:>10} {ours:>10,.0f} {ours_sys:>10,.0f} {ceiling:>13,.0f} {ours / ceiling:>10.0%} "
              f"{ours_sys / ceiling:>9.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
