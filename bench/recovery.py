"""Recovery store write rates: durable client records per second (SQLite on the state
directory's disk and on tmpfs; etcd with 3 members on loopback, data on tmpfs).

    .venv/bin/python bench/recovery.py [--count 300] [--no-etcd]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from securenfs.recovery.sqlite import SqliteRecoveryStore


async def rate(store, count: int, concurrent: bool) -> float:
    await store.open()
    await store.start_grace(1)
    t = time.perf_counter()
    owners = [b"bench-client-%06d" % i for i in range(count)]
    if concurrent:
        await asyncio.gather(*(store.record_client(o, "krb5:nfs/h@EX") for o in owners))
    else:
        for o in owners:
            await store.record_client(o, "krb5:nfs/h@EX")
    dt = time.perf_counter() - t
    await store.close()
    return count / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--no-etcd", action="store_true")
    a = ap.parse_args()
    for where in ("/var/tmp", "/dev/shm"):
        with tempfile.TemporaryDirectory(dir=where) as d:
            r = asyncio.run(rate(SqliteRecoveryStore(d), a.count, False))
        print(f"sqlite {where:9s} sequential record_client: {r:8.0f}/s")
    if a.no_etcd:
        return
    from securenfs.recovery.etcd import EtcdRecoveryStore
    from tests.support.etcd import start_etcd_cluster

    cluster = start_etcd_cluster(3)
    try:
        for conc in (False, True):
            store = EtcdRecoveryStore("bench", cluster.endpoints, prefix=f"/bench/{uuid.uuid4().hex}")
            r = asyncio.run(rate(store, a.count, conc))
            print(f"etcd 3 members {'concurrent' if conc else 'sequential'} record_client: {r:8.0f}/s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
