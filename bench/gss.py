"""RPCSEC_GSS benchmark: context setup rate, krb5i/krb5p call rates and 1 MiB throughput,
beside the raw python-gssapi MIC and wrap rates measured in the same run (the limit).

    .venv/bin/python bench/gss.py [--seconds 3]

Starts a private k5test KDC and the server in-process on 127.0.0.1; every loop is bounded
in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gssapi  # noqa: E402

from securenfs.client.gss import GssClientAuth  # noqa: E402
from securenfs.client.rpc import RpcClient  # noqa: E402
from securenfs.rpcsec_gss.constants import GssService  # noqa: E402
from tests.support.gss import ECHO_PROG, ECHO_VERS, PROC_ECHO, GssServer, gss_config  # noqa: E402
from tests.support.kdc import KdcRealm  # noqa: E402

MiB = 1 << 20


def bounded(seconds: float, max_n: int, fn) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    n, t0 = 0, time.perf_counter()
    while n < max_n and time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n, time.perf_counter() - t0


def raw_rates(kdc: KdcRealm, ccache: str, seconds: float) -> dict[str, float]:
    icred = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
    acred = gssapi.Credentials(usage="accept", store={"keytab": str(kdc.service_keytab)})
    name = gssapi.Name(f"nfs@{kdc.hostname}", gssapi.NameType.hostbased_service)
    ic = gssapi.SecurityContext(name=name, creds=icred, usage="initiate")
    ac = gssapi.SecurityContext(creds=acred, usage="accept")
    ic.step(ac.step(ic.step()))
    out: dict[str, float] = {}
    for label, size in (("200B", 200), ("1MiB", MiB)):
        data = os.urandom(size)
        n, dt = bounded(seconds, 200000, lambda: ac.verify_signature(data, ic.get_signature(data)))
        out[f"mic+verify {label}"] = n / dt
        n, dt = bounded(seconds, 200000, lambda: ac.unwrap(ic.wrap(data, True).message))
        out[f"wrap+unwrap {label}"] = n / dt
    return out


async def server_rates(srv: GssServer, kdc: KdcRealm, ccache: str, seconds: float) -> dict[str, float]:
    out: dict[str, float] = {}
    c = await RpcClient.connect(srv.host, srv.port)
    creds = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
    target = f"nfs@{kdc.hostname}"
    n, t0 = 0, time.perf_counter()
    while n < 3000 and time.perf_counter() - t0 < seconds:
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, target, creds=creds)
        await auth.destroy(c, ECHO_PROG, ECHO_VERS)
        n += 1
    out["contexts established+destroyed/s"] = n / (time.perf_counter() - t0)
    for service, tag in ((GssService.INTEGRITY, "krb5i"), (GssService.PRIVACY, "krb5p")):
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, target, creds=creds, service=service)
        small = os.urandom(200)
        depth = 16
        n, t0 = 0, time.perf_counter()
        while n < 200000 and time.perf_counter() - t0 < seconds:
            await asyncio.gather(*(c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, small, auth) for _ in range(depth)))
            n += depth
        out[f"{tag} calls/s (200 B, {depth} in flight)"] = n / (time.perf_counter() - t0)
        big = os.urandom(MiB)
        n, t0 = 0, time.perf_counter()
        while n < 2000 and time.perf_counter() - t0 < seconds:
            await asyncio.gather(*(c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, big, auth) for _ in range(2)))
            n += 2
        # Each call protects 1 MiB in each direction on both sides (client and server).
        out[f"{tag} MiB/s (1 MiB echo, payload one way)"] = n / (time.perf_counter() - t0)
    await c.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    kdc = KdcRealm()
    kdc.activate()
    try:
        ccache = str(kdc.user_ccache("bench"))
        raw = raw_rates(kdc, ccache, args.seconds)
        with tempfile.TemporaryDirectory() as tmp:
            srv = GssServer(gss_config(Path(tmp), kdc.service_keytab, kdc.hostname))
            try:
                rates = asyncio.run(server_rates(srv, kdc, ccache, args.seconds))
            finally:
                srv.close()
    finally:
        kdc.stop()
    print("raw python-gssapi, one core, same run:")
    for k, v in raw.items():
        unit = "MiB/s" if "1MiB" in k else "ops/s"
        print(f"  {k:40s} {v:12.1f} {unit}")
    print("server (client and server in this process, loopback):")
    for k, v in rates.items():
        print(f"  {k:40s} {v:12.1f}")
    limit = raw["wrap+unwrap 1MiB"]
    got = rates["krb5p MiB/s (1 MiB echo, payload one way)"]
    # The echo wraps and unwraps 1 MiB twice per call (request and reply), all on this machine.
    print(f"krb5p 1 MiB: {got:.1f} MiB/s one way; x2 protected per call = {2 * got:.1f} MiB/s of "
          f"wrap+unwrap vs raw one-core {limit:.1f} MiB/s ({100 * 2 * got / limit:.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
