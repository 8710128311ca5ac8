"""NFSv4.1 data-path throughput over loopback with the project's client (bounded in count and
time): OPEN+CLOSE pairs/s; 1 MiB sequential WRITE and READ MB/s under sys, krb5, krb5i and
krb5p; 4 KiB random READ and WRITE ops/s.

The server runs as its own process (``securenfs serve``), the client in this process; for the
Kerberos rows a private k5test KDC is started.  ``run_load()`` is shared with bench/compare.py,
which runs the same load against another server.

Kerberos message protection: the main rows run with ``kerberos.fast_path = true`` and the
client on the same OpenSSL engine; the krb5i/krb5p 1 MiB rows are then repeated against a
second server process with ``fast_path = false`` and the client on MIT's gss_wrap
("fast path off").  In the same run, the raw one-core OpenSSL AES+HMAC rate for the same
amount of data is printed as the ceiling (krb5p moves each byte through one wrap and one
unwrap, krb5i through one MIC and one verify).

The load generator shares the machine with the server, so every 1 MiB row also shows the CPU
each process used while it ran (user+system time / wall time; 100 % = one core).

    .venv/bin/python bench/nfs_io.py [--seconds 3] [--flavors sys,krb5,krb5i,krb5p] [--no-kerberos]
                                     [--io-only]
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

from securenfs.client.nfs4 import LINUX_GETATTR, Nfs4Client
from securenfs.client.rpc import AuthSys, RpcClient
from securenfs.nfs4.xdr4 import FILE_SYNC4, UNSTABLE4, BitmapArgs, FhArgs, NameArgs
from securenfs.proto.constants import Op
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4

MIB = 1 << 20
MAX_OPS = 200_000
SEQ_FILE_MIB = 64  # sequential file size (bounded)
RAND_FILE = 16 * MIB


@dataclass
class Results:
    rows: dict[str, float] = field(default_factory=dict)
    #: Per row: "client 95 %, server 160 %" (CPU over the row's wall time).
    notes: dict[str, str] = field(default_factory=dict)
    #: Print each row as it is measured.
    verbose: bool = True

    def add(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.rows[name] = value
        if note:
            self.notes[name] = note
        if self.verbose:
            print(f"  {name:48s} {value:10.1f} {unit}{'   ' + note if note else ''}", flush=True)


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) used so far by ``pid``, or by this process."""
    if pid is None or pid == os.getpid():
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _TICK


class CpuShare:
    """CPU used by the load generator (this process) and the server while a row runs."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.t0 = time.monotonic()
        self.c0 = process_cpu(None)
        self.s0 = process_cpu(server_pid) if server_pid else 0.0

    def note(self) -> str:
        wall = time.monotonic() - self.t0
        client = (process_cpu(None) - self.c0) / wall
        if not self.server_pid:
            return f"[client CPU {100 * client:.0f} %]"
        server = (process_cpu(self.server_pid) - self.s0) / wall
        return f"[client CPU {100 * client:.0f} %, server {100 * server:.0f} %]"


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


async def connect(host: str, port: int, flavor: str, kdc: Any = None, slots: int = 16,
                  fast_path: bool = True) -> Nfs4Client:
    """A mounted-ready client; Kerberos clients use the OpenSSL engine when ``fast_path``."""
    if flavor == "sys":
        return await Nfs4Client.connect(host, port, AuthSys(0, 0), slots=slots)
    from securenfs.client.gss import GssClientAuth
    from securenfs.rpcsec_gss.constants import GssService

    rpc = await RpcClient.connect(host, port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache("bench")),
                                         service=GssService({"krb5": 1, "krb5i": 2, "krb5p": 3}[flavor]),
                                         fast_path=fast_path)
    return Nfs4Client(rpc, auth, slots=slots)


def row_suffix(flavor: str, fast_path: bool) -> str:
    """Row label part: ``krb5p`` on the fast path, ``krb5p, fast path off`` on MIT."""
    return flavor if fast_path or flavor in ("sys", "krb5") else f"{flavor}, fast path off"


async def sequential_io(res: Results, host: str, port: int, export: str, seconds: float, flavors: list[str],
                        kdc: Any, name: str, fast_path: bool = True, server_pid: int | None = None) -> None:
    """1 MiB sequential WRITE then READ per flavor, 4 in flight, with the CPU share of each."""
    for flavor in flavors:
        if flavor != "sys" and kdc is None:
            continue
        fc = await connect(host, port, flavor, kdc, fast_path=fast_path)
        froot = await fc.mount(export)
        fname = f"{name}-seq-{flavor}-{int(fast_path)}"
        sf = await fc.open(froot, fname, create=True)
        data = os.urandom(MIB)

        async def swrite(k: int, i: int, fc: Nfs4Client = fc, sf: Any = sf, data: bytes = data) -> None:
            await fc.write(sf.fh, (i % SEQ_FILE_MIB) * MIB, data, sf.stateid, stable=UNSTABLE4)

        async def sread(k: int, i: int, fc: Nfs4Client = fc, sf: Any = sf) -> None:
            await fc.read(sf.fh, (i % SEQ_FILE_MIB) * MIB, MIB, sf.stateid)

        label = row_suffix(flavor, fast_path)
        cpu = CpuShare(server_pid)
        n, dt = await _bounded(seconds, MAX_OPS, 4, swrite)
        note = cpu.note()
        await fc.commit(sf.fh)
        res.add(f"1 MiB sequential WRITE MB/s ({label})", n * MIB / dt / 1e6, "MB/s", note)
        cpu = CpuShare(server_pid)
        n, dt = await _bounded(seconds, MAX_OPS, 4, sread)
        res.add(f"1 MiB sequential READ MB/s ({label})", n * MIB / dt / 1e6, "MB/s", cpu.note())
        await fc.close_file(sf)
        await fc.remove(froot, fname)
        await fc.close()


async def run_load(host: str, port: int, export: str, seconds: float, flavors: list[str], kdc: Any = None,
                   tag: str = "", *, fast_path: bool = True, server_pid: int | None = None,
                   io_only: bool = False, verbose: bool = True) -> Results:
    """The whole load against one server; returns the figures by row name.

    ``fast_path``: the Kerberos client's engine (OpenSSL or MIT).  ``io_only``: only the
    1 MiB sequential rows.
    """
    res = Results(verbose=verbose)
    name = f"bench-{os.getpid()}-{tag}"
    if io_only:
        await sequential_io(res, host, port, export, seconds, flavors, kdc, name, fast_path, server_pid)
        return res
    c = await connect(host, port, "sys")
    root = await c.mount(export)
    # OPEN+CLOSE pairs of one existing file, 16 in flight.
    f = await c.open(root, name + "-oc", create=True)
    await c.close_file(f)

    async def open_close(k: int, i: int) -> None:
        o = await c.open(root, name + "-oc", access=1, owner=b"oc%d" % k)
        await c.close_file(o)

    n, dt = await _bounded(seconds, MAX_OPS, 16, open_close)
    res.add("OPEN+CLOSE pairs/s (sys)", n / dt, "pairs/s")
    # Metadata compounds without state: GETATTR and LOOKUP+GETATTR, 16 in flight.
    fh = f.fh

    async def getattr_one(k: int, i: int) -> None:
        await c.getattr(fh)

    async def lookup_getattr(k: int, i: int) -> None:
        await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs((name + "-oc").encode())),
                     (Op.GETATTR, BitmapArgs(LINUX_GETATTR))])

    n, dt = await _bounded(seconds, MAX_OPS, 16, getattr_one)
    res.add("GETATTR compounds/s (sys)", n / dt, "ops/s")
    n, dt = await _bounded(seconds, MAX_OPS, 16, lookup_getattr)
    res.add("LOOKUP+GETATTR compounds/s (sys)", n / dt, "ops/s")
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
    await sequential_io(res, host, port, export, seconds, flavors, kdc, name, fast_path, server_pid)
    _ = FILE_SYNC4
    return res


def start_securenfs(tmp: Path, kdc: Any = None, fast_path: bool = True) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``securenfs serve`` on a free loopback port; ``fast_path`` is ``kerberos.fast_path``."""
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    data.chmod(0o777)  # Kerberos callers run as the export's anonymous id without an ID mapper
    ready = tmp / "ready"
    sec = "sys,krb5,krb5i,krb5p" if kdc is not None else "sys"
    cmd = [sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0", "--no-preflight",
           "--state-dir", str(tmp / "state"), "--export", f"{data}:/data:sec={sec}:no_root_squash",
           "--ready-file", str(ready), "--log-level", "WARNING"]
    conf = tmp / "bench.toml"
    conf.write_text(f"[kerberos]\nfast_path = {'true' if fast_path else 'false'}\n")
    cmd += ["--config", str(conf)]
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


def cheap_client() -> None:
    """Keep the load generator's megabyte buffers on the heap (as the server does with the
    fast path on, securenfs.gsscrypto.malloctune), so it takes less of the shared CPU."""
    from securenfs.gsscrypto import tune_malloc_for_large_buffers

    print(f"load generator: {tune_malloc_for_large_buffers().detail}")


def openssl_ceiling(seconds: float) -> dict[str, float]:
    """Raw one-core OpenSSL rates for the bytes of one 1 MiB transfer, in MB/s of payload.

    krb5p: AES-CBC encrypt + decrypt and two HMACs (one wrap, one unwrap); krb5i: two HMACs
    (one MIC, one verify); the realm's enctype, aes256-cts-hmac-sha1-96.
    """
    from bench.gss import raw_ceiling

    raw = raw_ceiling(18, min(seconds, 2.0))  # MiB/s of 1 MiB messages
    return {"krb5p": raw["wrap+unwrap"] * MIB / 1e6, "krb5i": raw["mic+verify"] * MIB / 1e6}


def print_fast_path_summary(res: Results, ceiling: dict[str, float]) -> None:
    print()
    print("Kerberos 1 MiB sequential I/O, MB/s: fast path off (gss_wrap) / on (OpenSSL), "
          "raw one-core OpenSSL AES+HMAC ceiling")
    for flavor in ("krb5i", "krb5p"):
        for op in ("WRITE", "READ"):
            on = res.rows.get(f"1 MiB sequential {op} MB/s ({flavor})")
            off = res.rows.get(f"1 MiB sequential {op} MB/s ({flavor}, fast path off)")
            if on is None or off is None:
                continue
            print(f"  {flavor} {op:5s}  off {off:7.1f}   on {on:7.1f}   on/off {on / off:5.2f}x   "
                  f"ceiling {ceiling[flavor]:7.1f}   on/ceiling {100 * on / ceiling[flavor]:4.0f} %")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--flavors", default="sys,krb5,krb5i,krb5p")
    ap.add_argument("--no-kerberos", action="store_true", help="sys rows only (no KDC)")
    ap.add_argument("--io-only", action="store_true", help="only the 1 MiB sequential rows")
    a = ap.parse_args()
    if a.seconds <= 0 or a.seconds > 60:
        ap.error("--seconds must be in (0, 60]")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    flavors = ["sys"] if a.no_kerberos else [f for f in a.flavors.split(",") if f]
    cheap_client()
    kdc = start_kdc() if any(f != "sys" for f in flavors) else None
    protected = [f for f in flavors if f in ("krb5i", "krb5p")]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            proc, port, _ = start_securenfs(Path(tmp) / "on", kdc, fast_path=True)
            try:
                print(f"securenfs NFSv4.1 on 127.0.0.1:{port} (server process, client in this process), "
                      "kerberos.fast_path = true, client on the fast path")
                res = asyncio.run(run_load("127.0.0.1", port, "/data", a.seconds, flavors, kdc,
                                           fast_path=True, server_pid=proc.pid, io_only=a.io_only))
            finally:
                proc.terminate()
                proc.wait(30)
            if protected and kdc is not None:
                proc, port, _ = start_securenfs(Path(tmp) / "off", kdc, fast_path=False)
                try:
                    print(f"securenfs on 127.0.0.1:{port}: kerberos.fast_path = false, client on MIT gss_wrap")
                    off = asyncio.run(run_load("127.0.0.1", port, "/data", a.seconds, protected, kdc,
                                               fast_path=False, server_pid=proc.pid, io_only=True))
                finally:
                    proc.terminate()
                    proc.wait(30)
                res.rows.update(off.rows)
                ceiling = openssl_ceiling(a.seconds)
                for flavor in protected:
                    res.add(f"raw OpenSSL AES+HMAC ceiling MB/s ({flavor})", ceiling[flavor], "MB/s",
                            "[one core, " + ("wrap+unwrap" if flavor == "krb5p" else "MIC+verify") + " of 1 MiB]")
                print_fast_path_summary(res, ceiling)
    finally:
        if kdc is not None:
            kdc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
