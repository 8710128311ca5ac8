"""The fuzzer (tests/support/fuzz.py) against a server process: seeded from our client's
real calls, session-aware, a fixed seed and a bounded count (``make fuzz`` runs longer:
SECURENFS_FUZZ_CALLS, SECURENFS_FUZZ_SEED).

Asserts: no NFS4ERR_SERVERFAULT and no RPC SYSTEM_ERR; a well-formed call on a fresh
connection is answered afterwards; RSS and open descriptors flat (generous bounds); the log
bounded per peer (securenfs.rpc.peerlog).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.gss import GssClientAuth
from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import AuthSys, RpcClient
from securenfs.nfs4.xdr4 import VoidArgs
from securenfs.proto.constants import Op
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.rpcsec_gss.constants import GssService
from tests.support.fuzz import Fuzzer, ServerProcess, good_call, load_corpus, record_workload
from tests.support.nfsserver import NfsServer

CALLS = int(os.environ.get("SECURENFS_FUZZ_CALLS", "20000"))
SEED = int(os.environ.get("SECURENFS_FUZZ_SEED", "25"))
GSS_CALLS = int(os.environ.get("SECURENFS_FUZZ_GSS_CALLS", "1000"))
SERVICE = {"krb5i": 2, "krb5p": 3}
#: Generous: a leak of a few hundred bytes per call passes 48 MiB only at ~100k calls, but a
#: leak of a buffer per bad call shows.
RSS_GROWTH_KIB = 48 * 1024
#: Descriptors other than the export's files (sockets, pipes, the state store) stay flat.
FD_GROWTH = 16
#: Descriptors of the export's files: the open-file cache's bound (Nfs4Service max_open_files)
#: plus a little for the ones in use.
OPEN_FILE_FDS = 1024 + 16


def test_fuzz_compounds(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path)
    srv.start()
    try:
        asyncio.run(asyncio.wait_for(_run(srv), 600))
    finally:
        srv.stop()


async def _run(srv: ServerProcess) -> None:
    auth = AuthSys(1000, 1000)
    seeds = await record_workload("127.0.0.1", srv.port, srv.export, auth)
    seeds += load_corpus()
    assert len(seeds) >= 25
    fz = Fuzzer("127.0.0.1", srv.port, seeds, seed=SEED)
    # Warm up (imports, caches, pools) before the baseline.
    await fz.run(min(500, CALLS // 10))
    rss0, fds0, lines0 = srv.rss_kib(), srv.fds(), srv.log_lines()
    calls0 = fz.stats.calls
    stats = await fz.run(CALLS)
    await fz.close()
    assert srv.alive()
    assert await good_call("127.0.0.1", srv.port, auth, srv.export) == 0
    rss1, fds1, lines1 = srv.rss_kib(), srv.fds(), srv.log_lines()
    bad = stats.calls - calls0
    per10k = (lines1 - lines0) * 10_000 / max(bad, 1)
    print(f"\nfuzz: {stats.summary()}\nfuzz: log lines {lines1 - lines0} for {bad:,} calls "
          f"({per10k:.0f} per 10,000); RSS {rss0} -> {rss1} KiB; descriptors (export files, others) "
          f"{fds0} -> {fds1}"
          f"\nfuzz: mutations {dict(sorted(stats.by_kind.items()))}\nfuzz: statuses {stats.statuses}")
    assert stats.serverfaults == 0 and stats.system_errs == 0, stats.faults[:10]
    assert stats.past_sequence > stats.compound_replies // 2
    assert rss1 - rss0 < RSS_GROWTH_KIB
    assert fds1[1] - fds0[1] < FD_GROWTH
    assert fds1[0] <= OPEN_FILE_FDS
    # One peer: a burst, a trickle and summaries (securenfs.rpc.peerlog), whatever the count.
    assert lines1 - lines0 < 400 + bad // 50


@pytest.mark.parametrize("service", ["krb5i", "krb5p"])
def test_fuzz_rpcsec_gss(tmp_path: Path, kdc_realm: Any, caplog: pytest.LogCaptureFixture, service: str) -> None:
    """RPCSEC_GSS-level mutations (RFC 2203 §5.3: credential, header MIC, krb5i body and
    checksum, krb5p token, seq_num replays and jumps) and COMPOUND mutations inside correctly
    protected bodies, against the in-process server with a real KDC."""
    srv = NfsServer(tmp_path, [("/k", ["krb5i", "krb5p"])], kdc=kdc_realm)
    srv.paths["/k"].chmod(0o1777)
    srv.start()
    caplog.set_level(logging.INFO, logger="securenfs")
    try:
        asyncio.run(asyncio.wait_for(_run_gss(srv, kdc_realm, service, caplog), 600))
    finally:
        srv.stop()


async def _gss_client(srv: NfsServer, kdc: Any, service: str) -> Nfs4Client:
    rpc = await RpcClient.connect("127.0.0.1", srv.port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache("alice")),
                                         service=GssService(SERVICE[service]))
    return Nfs4Client(rpc, auth, slots=1)


async def _run_gss(srv: NfsServer, kdc: Any, service: str, caplog: pytest.LogCaptureFixture) -> None:
    seeder = await _gss_client(srv, kdc, service)
    seeds = await record_workload("127.0.0.1", srv.port, "/k", seeder.auth) + load_corpus()
    auth = seeder.auth

    async def new_client() -> Nfs4Client:
        c = Nfs4Client(await RpcClient.connect("127.0.0.1", srv.port), auth, slots=1)
        return c

    fz = Fuzzer("127.0.0.1", srv.port, seeds, seed=SEED, auth=auth, gss=True, new_client=new_client)
    lines0 = len(caplog.records)
    stats = await fz.run(GSS_CALLS)
    await fz.close()
    lines = len(caplog.records) - lines0
    c = await _gss_client(srv, kdc, service)
    await c.establish()
    r = await c.seq_raw([(Op.PUTROOTFH, VoidArgs()), (Op.GETFH, VoidArgs())])
    assert r.status == 0
    await c.close()
    print(f"\nfuzz {service}: {stats.summary()}\nfuzz {service}: log lines {lines} for {stats.calls:,} calls"
          f"\nfuzz {service}: mutations {dict(sorted(stats.by_kind.items()))}\nfuzz {service}: statuses {stats.statuses}")
    assert stats.serverfaults == 0 and stats.system_errs == 0, stats.faults[:10]
    assert not [f for f in stats.faults if "unwrap" in f[1]], stats.faults[:10]
    assert stats.past_sequence > stats.compound_replies // 2
    assert lines < 400 + stats.calls // 50
