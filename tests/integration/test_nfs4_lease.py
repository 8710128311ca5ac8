"""Leases and the courteous server with a short lease (RFC 8881 §8.3, §8.4.2, §18.46.3):
SEQUENCE renews; an expired client keeps its state until another client conflicts with it;
then all of it is revoked at once and the client sees SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED
until it frees the revoked stateids."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.nfs4.xdr4 import GetattrRes, SequenceRes  # noqa: F401
from securenfs.proto.constants import Op, SeqStatus, Stat
from tests.support.nfsserver import NfsServer, mounted_client, run, status_of

LEASE = 2


@pytest.fixture
def short_lease(tmp_path: Path) -> Iterator[NfsServer]:
    srv = NfsServer(tmp_path, [("/a", ["sys"])], lease_time=LEASE)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def flags(c: Any) -> int:
    rep = await c.seq([])
    res = rep.results[0][1]
    assert isinstance(res, SequenceRes)
    return res.status_flags


def test_sequence_renews_the_lease(short_lease: NfsServer) -> None:
    (short_lease.paths["/a"] / "f").write_bytes(b"x")

    async def main() -> None:
        a, root = await mounted_client(short_lease)
        fa = await a.open(root, "f", access=3, deny=2)
        deadline = time.monotonic() + LEASE * 2.5
        while time.monotonic() < deadline:  # A keeps renewing: its reservation holds
            await a.seq([])
            await asyncio.sleep(LEASE / 4)
        # B comes now: a client with only a session would itself expire while A renews.
        b, _ = await mounted_client(short_lease)
        assert await status_of(b.open(root, "f", access=2)) == Stat.SHARE_DENIED
        assert await flags(a) == 0
        await a.close_file(fa)

    run(main())


def test_courteous_expiry_then_revocation_on_conflict(short_lease: NfsServer) -> None:
    (short_lease.paths["/a"] / "f").write_bytes(b"data")
    svc = None

    async def main() -> None:
        nonlocal svc
        svc = short_lease.server.nfs.service  # type: ignore[union-attr]
        a, root = await mounted_client(short_lease)
        fa = await a.open(root, "f", access=3, deny=2)
        la = await a.lock(fa, 0, 10, lock_owner=b"pa")
        other = await a.open(root, "g", create=True)
        await asyncio.sleep(LEASE * 2)  # A is silent: its lease runs out
        # Without a conflict the expired client keeps everything (courtesy client).
        assert svc.state.clients[a.clientid].courtesy_since is not None
        assert (await a.read(fa.fh, 0, 4, fa.stateid)).data == b"data"
        assert await flags(a) == 0
        await asyncio.sleep(LEASE * 2)
        b, _ = await mounted_client(short_lease)
        # B's conflicting requests revoke all of A's state at once and succeed.
        lb = await b.lockt(fa.fh, 0, 10)
        assert lb.status == 0
        fb = await b.open(root, "f", access=2)
        await b.write(fb.fh, 0, b"DATA", fb.stateid)
        assert not svc.state.files[fa.fh].locks
        # A learns it from SEQUENCE and from its stateids (EXPIRED), then frees them.
        assert await flags(a) & SeqStatus.EXPIRED_ALL_STATE_REVOKED
        assert await status_of(a.read(fa.fh, 0, 4, fa.stateid)) == Stat.EXPIRED
        assert await status_of(a.read(other.fh, 0, 4, other.stateid)) == Stat.EXPIRED
        codes = await a.test_stateids([fa.stateid, la, other.stateid])
        assert codes == [Stat.EXPIRED] * 3
        for s in (fa.stateid, la, other.stateid):
            await a.free_stateid(s)
        assert await flags(a) == 0
        # A can open again (without the deny it cannot, B writes).
        f2 = await a.open(root, "f", access=1)
        assert (await a.read(f2.fh, 0, 4, f2.stateid)).data == b"DATA"

    run(main())


def test_courtesy_clients_are_capped(short_lease: NfsServer) -> None:
    async def main() -> None:
        svc = short_lease.server.nfs.service  # type: ignore[union-attr]
        svc.laundromat.courtesy_max_age = LEASE
        a, root = await mounted_client(short_lease)
        await a.open(root, "h", create=True)
        await asyncio.sleep(LEASE * 3.5)
        # Long expired: the laundromat removed the client and its state.
        assert a.clientid not in svc.state.clients
        assert svc.clients.get(a.clientid) is None
        rep = await a.seq_raw([])
        assert rep.status in (Stat.BADSESSION, Stat.STALE_CLIENTID)
        _ = Op

    run(main())
