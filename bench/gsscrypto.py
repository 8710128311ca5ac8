"""Per-message GSS throughput: the OpenSSL fast path against python-gssapi (MIT libk5crypto).

For each AES enctype, on contexts established against a throwaway k5test KDC on loopback:

* wrap+unwrap (krb5p) and MIC+verify (krb5i) of one message, ours and MIT's, in MiB/s of
  message payload;
* the ceiling: raw OpenSSL AES-CBC encrypt+decrypt plus two HMACs over the same bytes
  (what a wrap+unwrap must do at least), and two HMACs for MIC+verify.

Every cell runs for a bounded time (--seconds, at least 3 rounds).  Run:

    .venv/bin/python bench/gsscrypto.py [--size 1048576] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import atexit
import hmac
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from securenfs.gsscrypto import FastContext
from securenfs.gsscrypto.enctypes import PROFILES
from tests.support.gsscrypto import EnctypeRealm

MIB = 1 << 20


def rate(fn: Callable[[], object], nbytes: int, seconds: float) -> float:
    """MiB/s of ``nbytes`` per call, over at least 3 calls and about ``seconds``."""
    fn()  # warm up
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < 3 or time.perf_counter() < deadline:
        fn()
        n += 1
        if n >= 10_000:
            break
    elapsed = time.perf_counter() - start
    return n * nbytes / elapsed / MIB


def ceiling(enctype: int, msg: bytes, seconds: float) -> tuple[float, float]:
    p = PROFILES[enctype]
    key = os.urandom(p.key_bytes)
    cipher = Cipher(algorithms.AES(key), modes.CBC(bytes(16)))
    mac = hmac.new(os.urandom(p.ki_bytes), digestmod=p.hash_name)
    buf = bytearray(len(msg) + 16)
    usable = len(msg) // 16 * 16
    view = memoryview(msg)[:usable]

    def seal_open() -> None:
        enc = cipher.encryptor()
        enc.update_into(view, buf)
        h1 = mac.copy()
        h1.update(msg)
        h1.digest()
        dec = cipher.decryptor()
        dec.update_into(memoryview(buf)[:usable], buf)
        h2 = mac.copy()
        h2.update(msg)
        h2.digest()

    def two_macs() -> None:
        for _ in range(2):
            h = mac.copy()
            h.update(msg)
            h.digest()

    return rate(seal_open, len(msg), seconds), rate(two_macs, len(msg), seconds)


def measure(
    realm: EnctypeRealm, et: int, msg: bytes, seconds: float
) -> tuple[str, float, float, float, float, float, float] | None:
    init, acc = realm.context_pair(et)
    fa = FastContext.from_gss(acc)
    fi = FastContext.from_gss(init)
    if fa is None or fi is None:
        return None
    n = len(msg)
    ours_wrap = rate(lambda: fi.unwrap(fa.wrap(msg)), n, seconds)
    mit_wrap = rate(lambda: init.unwrap(acc.wrap(msg, True).message), n, seconds)
    ours_mic = rate(lambda: fi.verify_mic(msg, fa.get_mic(msg)), n, seconds)
    mit_mic = rate(lambda: init.verify_signature(msg, acc.get_signature(msg)), n, seconds)
    ceil_wrap, ceil_mic = ceiling(et, msg, seconds)
    return (PROFILES[et].name, ours_wrap, mit_wrap, ceil_wrap, ours_mic, mit_mic, ceil_mic)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=MIB, help="message size in octets")
    ap.add_argument("--seconds", type=float, default=0.5, help="time per cell")
    args = ap.parse_args(argv)
    if args.size < 0 or args.seconds <= 0:
        ap.error("--size must be >= 0 and --seconds > 0")

    realm = EnctypeRealm()
    atexit.register(realm.kdc._kill)
    msg = os.urandom(args.size)
    rows = []
    try:
        for et in sorted(PROFILES):
            row = measure(realm, et, msg, args.seconds)
            if row is None:
                print(f"{PROFILES[et].name}: fast path unavailable", file=sys.stderr)
            else:
                rows.append(row)
    finally:
        realm.stop()

    print(f"message size {args.size} octets, MiB/s of payload, one thread")
    head = (
        "enctype",
        "wrap+unwrap ours",
        "python-gssapi",
        "OpenSSL ceiling",
        "MIC+verify ours",
        "python-gssapi",
        "OpenSSL ceiling",
    )
    widths = [28, 17, 14, 16, 16, 14, 16]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))))
    for name, *vals in rows:
        cells = [name.ljust(widths[0])]
        cells += [f"{v:.0f}".rjust(w) for v, w in zip(vals, widths[1:])]
        print("  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
