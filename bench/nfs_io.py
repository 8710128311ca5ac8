"""NFSv4.1 data-path throughput over loopback with the project's client (bounded in count and
time): OPEN+CLOSE pairs/s; 1 MiB sequential WRITE and READ MB/s under sys, krb5, krb5i and
krb5p; 4 KiB random READ and WRITE ops/s.

The server runs as its own process (``securenfs serve``), the client in this process; for the
Kerberos rows a private k5test KDC is started.  ``run_load()`` is shared with bench/compare.py,
which runs the same load against another server.

    .venv/bin/python bench/nfs_io.py [--seconds 3] [--flavors sys,krb5,krb5i,krb5p] [--no-kerberos]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import AuthSys, RpcClient
from securenfs.nfs4.xdr4 import FILE_SYNC4, UNSTABLE4
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4

MIB = 1 << 20
MAX_OPS = 200_000
SEQ_FILE_MIB = 64  # sequential file size (bounded)
RAND_FILE = 16 * MIB


@dataclass
class Results:
    rows: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str) -> None:
        self.rows[name] = value
        print(f"  {name:40s} {value:10.1f} {unit}", flush=True)


async def _bounded(seconds: float, n_max: int, workers: int, one: Any) -> tuple[int, float]:
    done = 0
    deadline = time.monotonic() + seconds

    async def worker(k: int) -> None:
        nonlocal done
        while time.monotonic() < deadline and done < n_max:
            await one(k, done)
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(workers)))
    return done, time.monotonic() - t0


async def connect(host: str, port: int, flavor: str, kdc: Any = None, slots: int = 16) -> Nfs4Client:
    if flavor == "sys":
        return await Nfs4Client.connect(host, port, AuthSys(0, 0), slots=slots)
    from securenfs.client.gss import GssClientAuth
    from securenfs.rpcsec_gss.constants import GssService

    rpc = await RpcClient.connect(host, port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache("bench")),
                                         service=GssService({"krb5": 1, "krb5i": 2, "krb5p": 3}[flavor]))
    return Nfs4Client(rpc, auth, slots=slots)


async def run_load(host: str, port: int, export: str, seconds: float, flavors: list[str], kdc: Any = None,
                   tag: str = "") -> Results:
    """The whole load against one server; returns the figures by row name."""
    res = Results()
    c = await connect(host, port, "sys")
    root = await c.mount(export)
    name = f"bench-{os.getpid()}-{tag}"
    # OPEN+CLOSE pairs of one existing file, 16 in flight.
    f = await c.open(root, name + "-oc", create=True)
    await c.close_file(f)

    async def open_close(k: int, i: int) -> None:
        o = await c.open(root, name + "-oc", access=1, owner=b"oc%d" % k)
        await c.close_file(o)

    n, dt = await _bounded(seconds, MAX_OPS, 16, open_close)
    res.add("OPEN+CLOSE pairs/s (sys)", n / dt, "pairs/s")
    # 4 KiB random I/O in a 16 MiB file, 16 in flight.
    rf = await c.open(root, name + "-rand", create=True)
    chunk = os.urandom(MIB)
    for off in range(0, RAND_FILE, MIB):
        await c.write(rf.fh, off, chunk, rf.stateid, stable=UNSTABLE4)
    await c.commit(rf.fh)
    rnd = random.Random(1)
    small = os.urandom(4096)

    async def rread(k: int, i: int) -> None:
        await c.read(rf.fh, rnd.randrange(RAND_FILE // 4096) * 4096, 4096, rf.stateid)

    async def rwrite(k: int, i: int) -> None:
        await c.write(rf.fh, rnd.randrange(RAND_FILE // 4096) * 4096, small, rf.stateid, stable=UNSTABLE4)

    n, dt = await _bounded(seconds, MAX_OPS, 16, rread)
    res.add("4 KiB random READ ops/s (sys)", n / dt, "ops/s")
    n, dt = await _bounded(seconds, MAX_OPS, 16, rwrite)
    res.add("4 KiB random WRITE ops/s (sys, unstable)", n / dt, "ops/s")
    await c.commit(rf.fh)
    await c.close_file(rf)
    await c.close()
    # 1 MiB sequential WRITE then READ per flavor, 4 in flight.
    for flavor in flavors:
        if flavor != "sys" and kdc is None:
            continue
        fc = await connect(host, port, flavor, kdc)
        froot = await fc.mount(export)
        sf = await fc.open(froot, f"{name}-seq-{flavor}", create=True)
        data = os.urandom(MIB)

        async def swrite(k: int, i: int, fc: Nfs4Client = fc, sf: Any = sf, data: bytes = data) -> None:
            await fc.write(sf.fh, (i % SEQ_FILE_MIB) * MIB, data, sf.stateid, stable=UNSTABLE4)

        async def sread(k: int, i: int, fc: Nfs4Client = fc, sf: Any = sf) -> None:
            await fc.read(sf.fh, (i % SEQ_FILE_MIB) * MIB, MIB, sf.stateid)

        n, dt = await _bounded(seconds, MAX_OPS, 4, swrite)
        await fc.commit(sf.fh)
        res.add(f"1 MiB sequential WRITE MB/s ({flavor})", n * MIB / dt / 1e6, "MB/s")
        n, dt = await _bounded(seconds, MAX_OPS, 4, sread)
        res.add(f"1 MiB sequential READ MB/s ({flavor})", n * MIB / dt / 1e6, "MB/s")
        await fc.close_file(sf)
        await fc.remove(froot, f"{name}-seq-{flavor}")
        await fc.close()
    _ = FILE_SYNC4
    return res


def start_securenfs(tmp: Path, kdc: Any = None) -> tuple[subprocess.Popen[bytes], int, Path]:
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    data.chmod(0o777)  # Kerberos callers run as the export's anonymous id without an ID mapper
    ready = tmp / "ready"
    sec = "sys,krb5,krb5i,krb5p" if kdc is not None else "sys"
    cmd = [sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0", "--no-preflight",
           "--state-dir", str(tmp / "state"), "--export", f"{data}:/data:sec={sec}:no_root_squash",
           "--ready-file", str(ready), "--log-level", "WARNING"]
    env = dict(os.environ)
    if kdc is not None:
        cmd += ["--keytab", str(kdc.service_keytab), "--hostname", kdc.hostname]
        env.update(kdc.env)
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], env=env)
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("securenfs did not start")
        time.sleep(0.05)
    return proc, int(ready.read_text().split()[1]), data


def start_kdc() -> Any:
    from tests.support.kdc import KdcRealm

    kdc = KdcRealm()
    kdc.activate()
    return kdc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--flavors", default="sys,krb5,krb5i,krb5p")
    ap.add_argument("--no-kerberos", action="store_true", help="sys rows only (no KDC)")
    a = ap.parse_args()
    if a.seconds <= 0 or a.seconds > 60:
        ap.error("--seconds must be in (0, 60]")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    flavors = ["sys"] if a.no_kerberos else [f for f in a.flavors.split(",") if f]
    kdc = start_kdc() if any(f != "sys" for f in flavors) else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            proc, port, _ = start_securenfs(Path(tmp), kdc)
            try:
                print(f"securenfs NFSv4.1 on 127.0.0.1:{port} (server process, client in this process)")
                asyncio.run(run_load("127.0.0.1", port, "/data", a.seconds, flavors, kdc))
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        if kdc is not None:
            kdc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
