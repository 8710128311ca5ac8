"""ID mapper benchmark against a real slapd with 10,000 users and 1,000 groups.

    .venv/bin/python bench/idmap.py [--cold N] [--warm N] [--schema rfc2307|rfc2307bis|ad]

Prints lookups/s cold (every lookup goes to LDAP), warm (cache hits) and the number of
LDAP queries caused by 1,000 concurrent lookups of the same 10 uncached names.  Every
loop is bounded in count and time; slapd runs on loopback and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from idmap import IdmapConfig, IdMapper, build_mapper  # noqa: E402
from tests.support.slapd import (  # noqa: E402
    DOMAIN,
    GROUPS,
    PEOPLE,
    REALM,
    SUFFIX,
    start_directory,
)

TIME_LIMIT = 20.0  # seconds per phase


def make_mapper(uri: str, schema: str) -> IdMapper:
    ldap: dict[str, Any] = {"uris": [uri], "base": SUFFIX, "user_base": PEOPLE,
                            "group_base": GROUPS, "schema": schema, "timeout": 4}
    if schema == "ad":
        ldap["nesting"] = "client"
    return build_mapper(IdmapConfig.from_mapping({
        "domain": DOMAIN, "local_realms": [REALM], "backends": ["ldap"], "ldap": ldap}))


async def timed_batches(fn: Any, keys: list[str], concurrency: int) -> tuple[int, float]:
    done = 0
    start = time.perf_counter()
    for i in range(0, len(keys), concurrency):
        await asyncio.gather(*(fn(k) for k in keys[i:i + concurrency]))
        done += len(keys[i:i + concurrency])
        if time.perf_counter() - start > TIME_LIMIT:
            break
    return done, time.perf_counter() - start


async def run(args: argparse.Namespace, uri: str) -> None:
    names = [f"u{i:05d}@{DOMAIN}" for i in range(args.cold)]
    principals = [f"u{i:05d}@{REALM}" for i in range(args.cold)]

    def owner(mapper: IdMapper) -> Any:
        return lambda k: mapper.owner_to_uid(k, allow_numeric=False)

    for label, concurrency in (("sequential", 1), ("concurrent x32", 32)):
        mapper = make_mapper(uri, args.schema)
        n, secs = await timed_batches(owner(mapper), names, concurrency)
        print(f"{'cold owner->uid (' + label + ')':<34}{n / secs:9.0f} lookups/s  "
              f"({n} names, LDAP)")
        mapper.close()

    mapper = make_mapper(uri, args.schema)
    n, secs = await timed_batches(
        lambda k: mapper.principal_to_identity(k), principals[: args.cold // 2], 32)
    print(f"{'cold principal->identity (x32)':<34}{n / secs:9.0f} lookups/s  "
          f"(uid + gids, {mapper.stats()['backends']['ldap']['queries']} LDAP queries)")

    warm_keys = (names * (args.warm // len(names) + 1))[: args.warm]
    await timed_batches(owner(mapper), names, 32)  # fill the cache
    start = time.perf_counter()
    done = 0
    for k in warm_keys:
        await mapper.owner_to_uid(k, allow_numeric=False)
        done += 1
        if done % 10_000 == 0 and time.perf_counter() - start > TIME_LIMIT:
            break
    secs = time.perf_counter() - start
    print(f"{'warm owner->uid (cache)':<34}{done / secs:9.0f} lookups/s  ({done} lookups)")
    mapper.close()

    mapper = make_mapper(uri, args.schema)
    ten = [f"u{9000 + i:05d}@{DOMAIN}" for i in range(10)]
    burst = [ten[i % 10] for i in range(1000)]
    start = time.perf_counter()
    await asyncio.gather(*(mapper.owner_to_uid(k, allow_numeric=False) for k in burst))
    secs = time.perf_counter() - start
    st = mapper.stats()
    print(f"1,000 concurrent lookups of 10 uncached names: "
          f"{st['backends']['ldap']['queries']} LDAP queries "
          f"({st['coalesced']} joined an in-flight query, the rest hit the cache; "
          f"{secs * 1000:.0f} ms)")
    mapper.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cold", type=int, default=2000, help="distinct names for the cold phase")
    p.add_argument("--warm", type=int, default=200_000, help="lookups for the warm phase")
    p.add_argument("--schema", default="rfc2307", choices=["rfc2307", "rfc2307bis", "ad"])
    args = p.parse_args()
    args.cold = max(10, min(args.cold, 10_000))
    started = time.perf_counter()
    directory = start_directory()
    print(f"slapd with 10,000 users / 1,000 groups ready in "
          f"{time.perf_counter() - started:.2f}s ({directory.uri}, schema {args.schema})")
    try:
        asyncio.run(run(args, directory.uri))
    finally:
        directory.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
