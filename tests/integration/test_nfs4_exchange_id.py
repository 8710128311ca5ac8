"""EXCHANGE_ID against every row of the case table of RFC 8881 §18.35.5, one test per row
(numbered and titled as the RFC's cases 1-9; the quoted words are the RFC's case titles).

Each row sets up records for one co_ownerid (EXCHANGE_ID calls by a principal with a verifier,
and CREATE_SESSION to confirm the latest), then sends the EXCHANGE_ID under test and checks
the status, which client id comes back, and EXCHGID4_FLAG_CONFIRMED_R.  The principal is the
AUTH_SYS uid (0 or 1000); the verifier is one byte repeated.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import pytest

from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import AuthSys
from securenfs.nfs4.xdr4 import (
    ChannelAttrs,
    CreateSessionArgs,
    ExchangeIdArgs,
    ExchangeIdRes,
    SequenceArgs,
    SessionIdArgs,
    VoidArgs,
)
from securenfs.proto.constants import ExchgIdFlag, Op, Stat
from tests.support.nfsserver import NfsServer

UPD = int(ExchgIdFlag.UPD_CONFIRMED_REC_A)
FORE = ChannelAttrs(0, 1 << 20, 1 << 20, 4096, 8, 4)
BACK = ChannelAttrs(0, 4096, 4096, 0, 2, 1)


@dataclass
class Row:
    case: str
    #: (uid, verifier byte, flags) EXCHANGE_IDs; "confirm" sends CREATE_SESSION for the last one.
    setup: list[Any]
    test: tuple[int, int, int]
    status: int
    #: "new" (an id not seen before), "confirmed" (the confirmed record's), or None (error).
    clientid: str | None
    confirmed_r: bool = False
    #: The unconfirmed record the test replaced can no longer be confirmed.
    replaced_unconfirmed: bool = False
    #: The confirmed record was replaced: its client id is unknown afterwards.
    confirmed_gone: bool = False


ROWS = [
    # Case 1, "New Owner ID": no record for the owner; a new, unconfirmed client id.
    Row("1 new owner", [], (0, 1, 0), Stat.OK, "new"),
    # Case 2, "Non-Update on Existing Client ID": confirmed record, same verifier and principal:
    # the same client id, flagged confirmed.
    Row("2 non-update, existing confirmed", [(0, 1, 0), "confirm"], (0, 1, 0), Stat.OK, "confirmed", True),
    # Case 3, "Client Collision": another principal, while the confirmed record is in use
    # (a session, an unexpired lease): NFS4ERR_CLID_INUSE.
    Row("3 collision, same verifier", [(0, 1, 0), "confirm"], (1000, 1, 0), Stat.CLID_INUSE, None),
    Row("3 collision, new verifier", [(0, 1, 0), "confirm"], (1000, 2, 0), Stat.CLID_INUSE, None),
    # ... but a confirmed record with no state (its only session destroyed, no opens or
    # locks) is no longer in use: the request is handled as a new owner.
    Row("3 other principal, holder without state", [(0, 1, 0), "confirm", "unsession"], (1000, 1, 0), Stat.OK,
        "new", confirmed_gone=True),
    Row("3 other principal and verifier, holder without state", [(0, 1, 0), "confirm", "unsession"],
        (1000, 2, 0), Stat.OK, "new", confirmed_gone=True),
    # Case 4, "Replacement of Unconfirmed Record": only an unconfirmed record: it is removed
    # and the request is handled as case 1, whatever the verifier or principal.
    Row("4 unconfirmed, new verifier", [(0, 1, 0)], (0, 2, 0), Stat.OK, "new", replaced_unconfirmed=True),
    Row("4 unconfirmed, same verifier", [(0, 1, 0)], (0, 1, 0), Stat.OK, "new", replaced_unconfirmed=True),
    Row("4 unconfirmed, other principal", [(0, 1, 0)], (1000, 2, 0), Stat.OK, "new", replaced_unconfirmed=True),
    # Case 5, "Client Restart": confirmed record, same principal, new verifier: a new
    # unconfirmed client id; the confirmed one stays until the new one is confirmed.
    Row("5 restart", [(0, 1, 0), "confirm"], (0, 2, 0), Stat.OK, "new"),
    # ... and a second restart before the first was confirmed replaces the unconfirmed record.
    Row("5 restart again while unconfirmed", [(0, 1, 0), "confirm", (0, 2, 0)], (0, 3, 0), Stat.OK, "new",
        replaced_unconfirmed=True),
    Row("5 restart again, same verifier", [(0, 1, 0), "confirm", (0, 2, 0)], (0, 2, 0), Stat.OK, "new",
        replaced_unconfirmed=True),
    # Case 6, "Update": confirmed record, same verifier and principal: the record's
    # properties are updated, the client id stays.
    Row("6 update", [(0, 1, 0), "confirm"], (0, 1, UPD), Stat.OK, "confirmed", True),
    Row("6 update while a restart is unconfirmed", [(0, 1, 0), "confirm", (0, 2, 0)], (0, 1, UPD), Stat.OK,
        "confirmed", True),
    # Case 8, "Update but Wrong Verifier": NFS4ERR_NOT_SAME.
    Row("8 update, wrong verifier", [(0, 1, 0), "confirm"], (0, 2, UPD), Stat.NOT_SAME, None),
    Row("8 update, verifier of the unconfirmed restart", [(0, 1, 0), "confirm", (0, 2, 0)], (0, 2, UPD),
        Stat.NOT_SAME, None),
    # Case 9, "Update but Wrong Principal": NFS4ERR_PERM.
    Row("9 update, wrong principal", [(0, 1, 0), "confirm"], (1000, 1, UPD), Stat.PERM, None),
    # Case 7, "Update of Nonexistent Record": no confirmed record: NFS4ERR_NOENT.
    Row("7 update, no record", [], (0, 1, UPD), Stat.NOENT, None),
    Row("7 update, only unconfirmed (same verifier)", [(0, 1, 0)], (0, 1, UPD), Stat.NOENT, None),
    Row("7 update, only unconfirmed (new verifier)", [(0, 1, 0)], (0, 2, UPD), Stat.NOENT, None),
]


def _auth(uid: int) -> AuthSys:
    return AuthSys(uid=uid, gid=uid)


async def _exchange(c: Nfs4Client, owner: bytes, uid: int, verf: int, flags: int) -> tuple[int, ExchangeIdRes | None]:
    rep = await c.compound([(Op.EXCHANGE_ID, ExchangeIdArgs(bytes([verf]) * 8, owner, flags))], auth=_auth(uid))
    res = rep.results[0][1]
    return rep.status, res if isinstance(res, ExchangeIdRes) and rep.status == 0 else None


@pytest.mark.parametrize("row", ROWS, ids=[r.case for r in ROWS])
def test_exchange_id_case_table(nfs_server: NfsServer, row: Row) -> None:
    async def main() -> None:
        c = await Nfs4Client.connect("127.0.0.1", nfs_server.port)
        owner = b"case-table-" + os.urandom(6).hex().encode()
        try:
            seen: set[int] = set()
            confirmed: int | None = None
            session: bytes | None = None
            last: tuple[int, int, ExchangeIdRes] | None = None
            for step in row.setup:
                if step == "unsession":
                    assert session is not None
                    rep = await c.compound([(Op.DESTROY_SESSION, SessionIdArgs(session))], auth=_auth(0))
                    assert rep.status == 0
                    session = None
                    continue
                if step == "confirm":
                    assert last is not None
                    uid, _v, res = last
                    rep = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(
                        res.clientid, res.sequenceid, 0, FORE, BACK))], auth=_auth(uid))
                    assert rep.status == 0
                    confirmed = res.clientid
                    session = rep.results[0][1].sessionid  # type: ignore[union-attr]
                    continue
                uid, verf, flags = step
                status, res = await _exchange(c, owner, uid, verf, flags)
                assert status == 0 and res is not None
                seen.add(res.clientid)
                last = (uid, verf, res)
            uid, verf, flags = row.test
            status, res = await _exchange(c, owner, uid, verf, flags)
            assert status == row.status, (Stat(status).name, Stat(row.status).name)
            if row.clientid is None:
                assert res is None
            else:
                assert res is not None
                if row.clientid == "new":
                    assert res.clientid not in seen
                else:
                    assert res.clientid == confirmed
                assert bool(res.flags & ExchgIdFlag.CONFIRMED_R) == row.confirmed_r
            if row.replaced_unconfirmed:
                assert last is not None
                _uid, _v, old = last
                rep = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(
                    old.clientid, old.sequenceid, 0, FORE, BACK))], auth=_auth(last[0]))
                assert rep.status == Stat.STALE_CLIENTID
            if row.confirmed_gone:
                assert confirmed is not None
                rep = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(confirmed, 5, 0, FORE, BACK))],
                                       auth=_auth(0))
                assert rep.status == Stat.STALE_CLIENTID
            if session is not None:
                # The confirmed client keeps its session through everything in the table
                # (a restart's new record is not confirmed here).
                rep = await c.compound([(Op.SEQUENCE, SequenceArgs(session, 1, 0, 0, False)),
                                        (Op.PUTROOTFH, VoidArgs())])
                assert rep.status == 0
            if res is not None and row.clientid == "new":
                # The new record can be confirmed by its principal.
                rep = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(
                    res.clientid, res.sequenceid, 0, FORE, BACK))], auth=_auth(uid))
                assert rep.status == 0, Stat(rep.status).name
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(main(), 60))
