"""Client lifecycle with a short lease: a client that vanishes holding only a session is
removed with everything it left behind, and the client and session tables are bounded.

RFC 8881 §2.10.13.2.2: "If a client crashes and never comes back ... the server has session
state that will never be used again. ... it MAY destroy the old session as well as locking
state."  Here a client with nothing but sessions goes as soon as its lease runs out; a client
with opens or locks keeps the courteous rules of test_nfs4_lease.py.  Past a bound the server
answers NFS4ERR_DELAY (RFC 8881 §15.1.1.3: the server "is not able to handle the request at
this time"), after the laundromat has tried to make room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.nfs4 import Nfs4Client
from securenfs.nfs4.xdr4 import (
    ChannelAttrs,
    CreateSessionArgs,
    ExchangeIdArgs,
    VoidArgs,
    unpack_compound_reply,
)
from securenfs.proto.constants import ExchgIdFlag, Op, Stat
from securenfs.xdr import Unpacker
from tests.support.nfsserver import NfsServer, mounted_client, run, status_of

LEASE = 2


def _server(tmp_path: Path, **server_cfg: Any) -> NfsServer:
    srv = NfsServer(tmp_path, [("/a", ["sys"])], lease_time=LEASE)
    for k, v in server_cfg.items():
        setattr(srv.cfg.server, k, v)
    return srv


@pytest.fixture
def short_lease(tmp_path: Path) -> Iterator[NfsServer]:
    srv = _server(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def stats(srv: NfsServer) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        return srv.server.nfs.service.client_stats()  # type: ignore[union-attr]

    return srv.on_server(get())


def records(srv: NfsServer) -> list[bytes]:
    async def get() -> list[bytes]:
        assert srv.server is not None and srv.server.recovery is not None
        return [r.owner_id for r in await srv.server.recovery.store.records()]  # type: ignore[attr-defined]

    return srv.on_server(get())


async def wait_for(pred: Any, limit: float) -> None:
    """Poll ``pred`` (bounded): the laundromat runs every lease/4."""
    deadline = time.monotonic() + limit
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


FORE = ChannelAttrs(0, 65536, 65536, 4096, 8, 4)
BACK = ChannelAttrs(0, 4096, 4096, 0, 2, 1)


def create_session_args(c: Nfs4Client, n: int) -> bytes:
    """The encoded CREATE_SESSION that creates the client's ``n``-th further session."""
    assert c.exchange is not None
    return c.encode([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, (c.exchange.sequenceid + n) & 0xFFFFFFFF,
                                                           0, FORE, BACK))])


async def another_session(c: Nfs4Client, n: int) -> int:
    return int(unpack_compound_reply(Unpacker(await c.raw(create_session_args(c, n)))).status)


def test_client_with_only_sessions_expires_with_its_sessions_and_record(short_lease: NfsServer) -> None:
    srv = short_lease

    async def main() -> None:
        ghost, groot = await mounted_client(srv)
        await another_session(ghost, 1)  # a second session, bound to the same connection
        assert records(srv) == []  # no record until a client's first open
        # The ghost held an open once (so it was recorded), then closed it: no state left.
        await ghost.close_file(await ghost.open(groot, "once", create=True))
        keeper, root = await mounted_client(srv)
        f = await keeper.open(root, "held", create=True)
        st = stats(srv)
        assert (st["confirmed"], st["sessions"], st["bound_connections"]) == (2, 3, 2)
        assert sorted(records(srv)) == sorted([ghost.owner, keeper.owner])

        # The ghost stops renewing; the keeper renews.  After the ghost's lease the ghost
        # is gone: sessions, slots, connection bindings and its stable record.
        async def renew() -> None:
            while True:
                await keeper.seq([])
                await asyncio.sleep(LEASE / 4)

        t = asyncio.create_task(renew())
        await wait_for(lambda: stats(srv)["confirmed"] == 1, LEASE * 4)
        st = stats(srv)
        assert (st["sessions"], st["bound_connections"]) == (1, 1)
        await wait_for(lambda: records(srv) == [keeper.owner], LEASE * 2)

        # The ghost's session is unknown now (RFC 8881 §2.10.13.1: loss of the client ID
        # implies loss of its sessions), and so is its client id.
        rep = await ghost.seq_raw([])
        assert rep.status == Stat.BADSESSION
        assert await status_of(ghost.create_session()) == Stat.STALE_CLIENTID
        # It can start over, and the keeper's open was never touched.
        await ghost.establish()
        await ghost.seq([(Op.PUTROOTFH, VoidArgs())])
        t.cancel()
        await keeper.close_file(f)

    run(main())


def test_expired_client_with_an_open_stays_courteous(short_lease: NfsServer) -> None:
    srv = short_lease

    async def main() -> None:
        a, root = await mounted_client(srv)
        await a.open(root, "kept", create=True)
        await asyncio.sleep(LEASE * 2.5)
        # Lease over but it holds an open: still there with its session and record
        # (docs/locking.md, courteous server).
        st = stats(srv)
        assert (st["confirmed"], st["sessions"], st["with_state"]) == (1, 1, 1)
        assert records(srv) == [a.owner]
        assert (await a.seq_raw([])).status == 0

    run(main())


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[NfsServer]:
    srv = _server(tmp_path, max_clients=3, max_sessions_per_client=2)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_client_cap_answers_delay_and_recovers(capped: NfsServer, caplog: pytest.LogCaptureFixture) -> None:
    srv = capped

    async def main() -> None:
        clients = []
        for _ in range(3):
            c, _root = await mounted_client(srv)
            clients.append(c)
        assert stats(srv)["client_owners"] == 3
        late = await Nfs4Client.connect("127.0.0.1", srv.port)
        with caplog.at_level(logging.WARNING, "securenfs"):
            assert await status_of(late.exchange_id()) == Stat.DELAY
        assert "client table full (3 client owners, server.max_clients = 3)" in caplog.text
        assert "peers holding the most clients: 127.0.0.1 (3)" in caplog.text
        # A known client's EXCHANGE_ID (same owner and verifier, RFC 8881 §18.35.5 case 2)
        # needs no room; its session keeps working.
        res = await clients[0].exchange_id()
        assert res.flags & ExchgIdFlag.CONFIRMED_R
        assert (await clients[0].seq_raw([])).status == 0

        # One client leaves properly: the next one gets in at once.
        await clients[0].destroy_session()
        await clients[0].destroy_clientid()
        await late.establish()
        # Full again; one of them vanishes and the others keep renewing: after its lease
        # the laundromat's room goes to the next newcomer.
        later = await Nfs4Client.connect("127.0.0.1", srv.port)
        assert await status_of(later.exchange_id()) == Stat.DELAY
        assert stats(srv)["refused_exchange_id"] == 2

        async def renew() -> None:
            while True:
                for c in (clients[1], late):
                    await c.seq([])
                await asyncio.sleep(LEASE / 4)

        t = asyncio.create_task(renew())
        deadline = time.monotonic() + LEASE * 4
        while await status_of(later.exchange_id()) == Stat.DELAY:
            assert time.monotonic() < deadline, "no room after the lease of a vanished client"
            await asyncio.sleep(0.2)
        await later.create_session()
        assert (await later.seq_raw([])).status == 0
        assert clients[2].clientid not in {c["clientid"] for c in _client_ids(srv)}
        t.cancel()

    run(main())


def _client_ids(srv: NfsServer) -> list[dict[str, int]]:
    async def get() -> list[dict[str, int]]:
        svc = srv.server.nfs.service  # type: ignore[union-attr]
        return [{"clientid": c.clientid} for c in svc.clients.clients()]

    return srv.on_server(get())


def test_courtesy_client_makes_room_when_the_table_is_full(capped: NfsServer) -> None:
    srv = capped

    async def main() -> None:
        holder, root = await mounted_client(srv)
        await holder.open(root, "h", create=True)
        others = [(await mounted_client(srv))[0] for _ in range(2)]

        async def renew() -> None:
            while True:
                for c in others:
                    await c.seq([])
                await asyncio.sleep(LEASE / 4)

        t = asyncio.create_task(renew())
        await asyncio.sleep(LEASE * 2)
        # The holder's lease is over but it holds an open: a courtesy client, still counted.
        assert stats(srv)["client_owners"] == 3
        newcomer = await Nfs4Client.connect("127.0.0.1", srv.port)
        await newcomer.establish()  # the longest-expired courtesy client made room
        assert (await holder.seq_raw([])).status == Stat.BADSESSION
        assert stats(srv)["client_owners"] == 3
        t.cancel()

    run(main())


def test_session_cap_answers_delay_and_recovers(capped: NfsServer) -> None:
    srv = capped

    async def main() -> None:
        c = await Nfs4Client.connect("127.0.0.1", srv.port)
        await c.establish()
        # A second session with the raw request (kept to replay it).
        second = create_session_args(c, 1)
        first_reply = await c.raw(second)
        assert unpack_compound_reply(Unpacker(first_reply)).status == 0
        assert stats(srv)["sessions"] == 2
        # A third is refused; the retry of the second still gets its cached reply
        # (RFC 8881 §18.36.4: CREATE_SESSION's own replay cache comes first).
        third = create_session_args(c, 2)
        assert unpack_compound_reply(Unpacker(await c.raw(third))).status == Stat.DELAY
        assert await c.raw(second) == first_reply
        assert stats(srv)["refused_create_session"] == 1
        # The client still works; once it destroys a session the third is created.
        assert (await c.seq_raw([])).status == 0
        await c.destroy_session()
        assert unpack_compound_reply(Unpacker(await c.raw(third))).status == 0
        assert stats(srv)["sessions"] == 2

    run(main())


def test_refused_exchange_ids_leave_nothing_behind(capped: NfsServer) -> None:
    """EXCHANGE_ID updating an unknown owner is refused (RFC 8881 §18.35.5 case 9,
    NFS4ERR_NOENT); a flood of those must not fill the client table."""
    srv = capped

    async def main() -> None:
        c = await Nfs4Client.connect("127.0.0.1", srv.port)
        for i in range(10):
            rep = unpack_compound_reply(Unpacker(await c.raw(c.encode([(Op.EXCHANGE_ID, ExchangeIdArgs(
                b"v" * 8, b"nobody-%d" % i, int(ExchgIdFlag.UPD_CONFIRMED_REC_A)))]))))
            assert rep.status == Stat.NOENT
        for _ in range(3):
            await (await mounted_client(srv))[0].seq([])
        assert stats(srv)["client_owners"] == 3

    run(main())


def test_memory_and_records_flat_across_abandoned_clients(tmp_path: Path) -> None:
    """A real server process (lease 10 s, longer than making the clients takes): two rounds of 2,000 clients that create a session
    and vanish, one in four after opening and closing a file (those have a stable record).  After each round no client, session, connection binding or record is left,
    and the second round's memory is the first round's, reused (bench/ghost_clients.py
    runs the same with 100,000)."""
    from bench.ghost_clients import GhostServer, run_round

    srv = GhostServer(tmp_path, max_clients=10_000, lease=10)
    srv.start()
    try:
        first = run_round(srv, 2000, b"ghost-a", timeout=60, open_every=4)
        second = run_round(srv, 2000, b"ghost-b", timeout=60, open_every=4)
    finally:
        srv.stop()
    for r in (first, second):
        assert r.clients_peak == 2000
        assert r.records_peak == 500  # recorded before their first open; the others never
        assert (r.records_after, r.clients_after, r.sessions_after, r.bound_connections_after) == (0, 0, 0, 0)
    # Generous bounds: 2,000 live clients cost about 10 MiB here.
    assert first.rss_after_mib - first.rss_before_mib < 64
    assert second.rss_after_mib - first.rss_after_mib < 16
