"""RPCSEC_GSS benchmark: krb5i/krb5p through the real server with the OpenSSL fast path on
and off, beside the one-core limits measured in the same run.

    .venv/bin/python bench/gss.py [--seconds 3] [--no-malloc-tuning]

Starts a private k5test KDC and the server in-process on 127.0.0.1 (client and server share
this process and the machine's cores).  For each engine the server runs with
``kerberos.fast_path`` set accordingly and the client uses the same engine, so both ends
are measured on it.  Limits, one core, 1 MiB messages:

* MIT: python-gssapi wrap+unwrap and MIC+verify (gss_wrap/gss_unwrap on libk5crypto);
* OpenSSL fast path: the same with securenfs.gsscrypto's FastContext;
* ceiling: raw OpenSSL AES-CBC encrypt + decrypt and two HMACs over the same bytes (what a
  wrap+unwrap must do at least), and two HMACs for MIC+verify.

The MIT rows run first, with glibc's default malloc settings; then the malloc tuning the
server applies at start when the fast path is on (securenfs.gsscrypto.malloctune) is
applied, and the fast-path rows run.  ``--no-malloc-tuning`` skips it.  Every loop is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gssapi  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

from securenfs.client.gss import GssClientAuth  # noqa: E402
from securenfs.client.rpc import RpcClient  # noqa: E402
from securenfs.gsscrypto import FastContext, tune_malloc_for_large_buffers  # noqa: E402
from securenfs.gsscrypto.enctypes import PROFILES  # noqa: E402
from securenfs.gsscrypto.keysource import inquire_session_key  # noqa: E402
from securenfs.rpcsec_gss.constants import GssService  # noqa: E402
from tests.support.gss import (  # noqa: E402
    ECHO_PROG,
    ECHO_VERS,
    PROC_ECHO,
    GssServer,
    context_pair,
    gss_config,
)
from tests.support.kdc import KdcRealm  # noqa: E402

MiB = 1 << 20


def bounded(seconds: float, max_n: int, fn: Callable[[], object]) -> tuple[int, float]:
    fn()  # warm up
    n, t0 = 0, time.perf_counter()
    while n < max_n and (n < 3 or time.perf_counter() - t0 < seconds):
        fn()
        n += 1
    return n, time.perf_counter() - t0


def raw_mit(kdc: KdcRealm, ccache: str, seconds: float) -> tuple[dict[str, float], int]:
    ic, ac = context_pair(ccache, kdc.service_keytab, f"nfs@{kdc.hostname}")
    enctype = inquire_session_key(ac).enctype
    data = os.urandom(MiB)
    out: dict[str, float] = {}
    n, dt = bounded(seconds, 100000, lambda: ac.unwrap(ic.wrap(data, True).message))
    out["wrap+unwrap"] = n / dt
    n, dt = bounded(seconds, 100000, lambda: ac.verify_signature(data, ic.get_signature(data)))
    out["mic+verify"] = n / dt
    return out, enctype


def raw_fast(kdc: KdcRealm, ccache: str, seconds: float) -> dict[str, float]:
    ic, ac = context_pair(ccache, kdc.service_keytab, f"nfs@{kdc.hostname}")
    fi, fa = FastContext.from_gss(ic), FastContext.from_gss(ac)
    assert fi is not None and fa is not None, "the realm's enctype has no fast path"
    data = os.urandom(MiB)
    out: dict[str, float] = {}
    n, dt = bounded(seconds, 100000, lambda: fa.unwrap(fi.wrap(data)))
    out["wrap+unwrap"] = n / dt
    n, dt = bounded(seconds, 100000, lambda: fa.verify_mic(data, fi.get_mic(data)))
    out["mic+verify"] = n / dt
    return out


def raw_ceiling(enctype: int, seconds: float) -> dict[str, float]:
    """AES-CBC encrypt+decrypt and two HMACs over 1 MiB with OpenSSL: the floor of the work."""
    p = PROFILES[enctype]
    cipher = Cipher(algorithms.AES(os.urandom(p.key_bytes)), modes.CBC(bytes(16)))
    mac = hmac.new(os.urandom(p.ki_bytes), digestmod=p.hash_name)
    data = os.urandom(MiB)
    buf = bytearray(MiB + 16)
    view = memoryview(buf)[:MiB]

    def seal_open() -> None:
        cipher.encryptor().update_into(data, buf)
        h = mac.copy()
        h.update(data)
        h.digest()
        cipher.decryptor().update_into(view, buf)
        h = mac.copy()
        h.update(data)
        h.digest()

    def two_macs() -> None:
        for _ in range(2):
            h = mac.copy()
            h.update(data)
            h.digest()

    out: dict[str, float] = {}
    n, dt = bounded(seconds, 100000, seal_open)
    out["wrap+unwrap"] = n / dt
    n, dt = bounded(seconds, 100000, two_macs)
    out["mic+verify"] = n / dt
    return out


async def server_rates(srv: GssServer, kdc: KdcRealm, ccache: str, seconds: float,
                       fast: bool, setup: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    c = await RpcClient.connect(srv.host, srv.port)
    creds = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
    target = f"nfs@{kdc.hostname}"
    if setup:
        n, t0 = 0, time.perf_counter()
        while n < 3000 and time.perf_counter() - t0 < seconds:
            auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, target, creds=creds, fast_path=fast)
            await auth.destroy(c, ECHO_PROG, ECHO_VERS)
            n += 1
        out["contexts/s"] = n / (time.perf_counter() - t0)
    for service, tag in ((GssService.INTEGRITY, "krb5i"), (GssService.PRIVACY, "krb5p")):
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, target, creds=creds, service=service,
                                             fast_path=fast)
        small = os.urandom(200)
        await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, small, auth)
        want = "openssl" if fast else "mit"
        assert auth.protection == want, auth.fast_path_reason
        summary = {s["handle"]: s for s in srv.call_soon(srv.handler.contexts)}[auth.handle.hex()]
        assert summary["protection"] == want, summary
        depth = 16
        n, t0 = 0, time.perf_counter()
        while n < 200000 and time.perf_counter() - t0 < seconds:
            await asyncio.gather(*(c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, small, auth) for _ in range(depth)))
            n += depth
        out[f"{tag} calls/s"] = n / (time.perf_counter() - t0)
        big = os.urandom(MiB)
        n, t0 = 0, time.perf_counter()
        while n < 5000 and (n < 4 or time.perf_counter() - t0 < seconds):
            await asyncio.gather(*(c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, big, auth) for _ in range(2)))
            n += 2
        out[f"{tag} MiB/s"] = n / (time.perf_counter() - t0)
    await c.close()
    return out


def run_server(kdc: KdcRealm, ccache: str, seconds: float, fast: bool, setup: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        srv = GssServer(gss_config(Path(tmp), kdc.service_keytab, kdc.hostname, fast_path=fast))
        try:
            return asyncio.run(server_rates(srv, kdc, ccache, seconds, fast, setup))
        finally:
            srv.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="leave glibc's malloc settings alone for the fast-path rows")
    args = ap.parse_args()
    if args.seconds <= 0:
        ap.error("--seconds must be > 0")
    kdc = KdcRealm()
    kdc.activate()
    try:
        ccache = str(kdc.user_ccache("bench"))
        mit_raw, enctype = raw_mit(kdc, ccache, args.seconds)
        mit = run_server(kdc, ccache, args.seconds, fast=False, setup=True)
        tuning = "not applied (--no-malloc-tuning)"
        if not args.no_malloc_tuning:
            tuning = tune_malloc_for_large_buffers().detail
        ceil = raw_ceiling(enctype, args.seconds)
        fast_raw = raw_fast(kdc, ccache, args.seconds)
        fast = run_server(kdc, ccache, args.seconds, fast=True, setup=True)
    finally:
        kdc.stop()

    name = PROFILES[enctype].name if enctype in PROFILES else f"enctype {enctype}"
    print(f"RPCSEC_GSS, context enctype {name}; client and server in one process on loopback")
    print(f"fast-path rows: {tuning}")
    print()
    print("one core, 1 MiB message, MiB/s of message payload (limits):")
    print(f"  {'':34s} {'MIT (gss_wrap)':>15s} {'OpenSSL fast':>13s} {'raw OpenSSL AES+HMAC':>21s}")
    for op in ("wrap+unwrap", "mic+verify"):
        print(f"  {op:34s} {mit_raw[op]:15.1f} {fast_raw[op]:13.1f} {ceil[op]:21.1f}")
    print()
    print("through the server (echo program; each call protects the payload both ways):")
    print(f"  {'':34s} {'fast_path off':>15s} {'fast_path on':>13s} {'on/off':>8s}")
    rows = [("contexts established+destroyed/s", "contexts/s"),
            ("krb5i calls/s (200 B, 16 in flight)", "krb5i calls/s"),
            ("krb5p calls/s (200 B, 16 in flight)", "krb5p calls/s"),
            ("krb5i MiB/s (1 MiB, one way)", "krb5i MiB/s"),
            ("krb5p MiB/s (1 MiB, one way)", "krb5p MiB/s")]
    for label, key in rows:
        print(f"  {label:34s} {mit[key]:15.1f} {fast[key]:13.1f} {fast[key] / mit[key]:7.2f}x")
    print()
    off, on = mit["krb5p MiB/s"], fast["krb5p MiB/s"]
    ratio = on / off
    print(f"goal 1: 1 MiB krb5p with the fast path >= 3x the gss_wrap path: "
          f"{on:.1f} vs {off:.1f} MiB/s = {ratio:.2f}x -> {'met' if ratio >= 3 else 'NOT met'}")
    # Each echo call is 2 wrap+unwrap pairs of 1 MiB (request and reply), all on this machine.
    for label, got, limit in (("fast path on", on, fast_raw["wrap+unwrap"]),
                              ("fast path off", off, mit_raw["wrap+unwrap"])):
        work = 2 * got
        share = work / limit
        print(f"goal 2 ({label}): 1 MiB krb5p payload {got:.1f} MiB/s one way = {work:.1f} MiB/s of "
              f"wrap+unwrap work vs raw one-core wrap+unwrap {limit:.1f} MiB/s = {100 * share:.0f}% "
              f"(goal >= 70%) -> {'met' if share >= 0.7 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
