"""Sessions and clients over loopback: the reply cache, slot errors, EXCHANGE_ID cases,
CREATE_SESSION sequencing, DESTROY_*, RECLAIM_COMPLETE, and the op-position rules."""

from __future__ import annotations

import asyncio

from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.client.rpc import AuthSys
from securenfs.nfs4.xdr4 import (
    ChannelAttrs,
    ClientIdArgs,
    CreateSessionArgs,
    ExchangeIdArgs,
    SequenceArgs,
    SessionIdArgs,
    VoidArgs,
)
from securenfs.proto.constants import ExchgIdFlag, Op, Stat
from tests.support.nfsserver import NfsServer, run

V = VoidArgs()


async def _client(srv: NfsServer, **kw) -> Nfs4Client:  # type: ignore[no-untyped-def]
    return await Nfs4Client.connect("127.0.0.1", srv.port, **kw)


def test_replay_cache_and_slot_errors(nfs_server: NfsServer) -> None:
    async def main() -> None:
        c = await _client(nfs_server)
        await c.establish()
        ops = [(Op.PUTROOTFH, V), (Op.GETFH, V)]
        seq = c.next_seqid(3)
        args = c.encode([(Op.SEQUENCE, SequenceArgs(c.sessionid, seq, 3, 15, True)), *ops])
        first = await c.raw(args)
        again = await c.raw(args)
        assert first == again  # byte-identical cached reply
        # The same slot and seqid with different operations: a false retry.
        other = c.encode([(Op.SEQUENCE, SequenceArgs(c.sessionid, seq, 3, 15, True)), (Op.PUTROOTFH, V)])
        from securenfs.nfs4.xdr4 import unpack_compound_reply
        from securenfs.xdr import Unpacker

        r = unpack_compound_reply(Unpacker(await c.raw(other)))
        assert r.status == Stat.SEQ_FALSE_RETRY
        # Skipping ahead or going back: misordered.
        for bad in (seq + 2, seq - 1):
            r = await c.seq_raw(ops, slot=3, seqid=bad)
            assert r.status == Stat.SEQ_MISORDERED
        # A slot beyond the table.
        r = await c.seq_raw(ops, slot=16, seqid=1)
        assert r.status == Stat.BADSLOT
        # The slot still works with the next seqid, and reports the slot table.
        r = await c.seq_raw(ops, slot=3, seqid=seq + 1)
        assert r.status == 0
        sres = r.results[0][1]
        assert sres.highest_slotid == 15 and sres.target_highest_slotid == 15  # type: ignore[attr-defined]
        assert sres.status_flags == 0  # type: ignore[attr-defined]
        # An unknown session.
        r = await c.compound([(Op.SEQUENCE, SequenceArgs(b"\1" * 16, 1, 0, 0, False))])
        assert r.status == Stat.BADSESSION
        await c.close()

    run(main())


def test_many_slots_in_flight(nfs_server: NfsServer) -> None:
    async def main() -> None:
        c = await _client(nfs_server, slots=32)
        await c.establish()
        reps = await asyncio.gather(*(c.seq([(Op.PUTROOTFH, V), (Op.GETFH, V)]) for _ in range(200)))
        assert all(r.status == 0 for r in reps)
        await c.close()

    run(main())


def test_exchange_id_cases(nfs_server: NfsServer) -> None:
    async def main() -> None:
        owner = b"owner-under-test"
        a = await _client(nfs_server, owner=owner)
        r1 = await a.exchange_id()
        assert not r1.flags & ExchgIdFlag.CONFIRMED_R
        assert r1.so_major_id == b"securenfs-test" and r1.server_scope == b"securenfs-test-scope"
        await a.create_session()
        # Case 2: the same owner, verifier and principal: the same confirmed client id.
        r2 = await a.exchange_id()
        assert r2.clientid == r1.clientid and r2.flags & ExchgIdFlag.CONFIRMED_R
        # Case 6: update of the confirmed record.
        r3 = await a.exchange_id(flags=ExchgIdFlag.UPD_CONFIRMED_REC_A)
        assert r3.clientid == r1.clientid
        # Case 3: another principal (uid 1000) claims the owner while it holds a session.
        b = await _client(nfs_server, owner=owner, auth=AuthSys(uid=1000, gid=1000))
        b.verifier = a.verifier
        try:
            await b.exchange_id()
            raise AssertionError("CLID_INUSE expected")
        except Nfs4Error as exc:
            assert exc.status == Stat.CLID_INUSE
        # Case 8: update by another principal.
        try:
            await b.exchange_id(flags=ExchgIdFlag.UPD_CONFIRMED_REC_A)
            raise AssertionError("PERM expected")
        except Nfs4Error as exc:
            assert exc.status == Stat.PERM
        # Case 7: update with another verifier.
        a2 = await _client(nfs_server, owner=owner)
        try:
            await a2.exchange_id(flags=ExchgIdFlag.UPD_CONFIRMED_REC_A)
            raise AssertionError("NOT_SAME expected")
        except Nfs4Error as exc:
            assert exc.status == Stat.NOT_SAME
        # Case 9: update of an unknown owner.
        n = await _client(nfs_server)
        try:
            await n.exchange_id(flags=ExchgIdFlag.UPD_CONFIRMED_REC_A)
            raise AssertionError("NOENT expected")
        except Nfs4Error as exc:
            assert exc.status == Stat.NOENT
        # Case 4: client reboot (new verifier): a new client id; confirming it removes the
        # old client and its session.
        r4 = await a2.exchange_id()
        assert r4.clientid != r1.clientid
        old_session = a.sessionid
        await a2.create_session()
        r = await a.compound([(Op.SEQUENCE, SequenceArgs(old_session, 1, 0, 0, False))])
        assert r.status == Stat.BADSESSION
        # Case 5: a second EXCHANGE_ID replaces an unconfirmed record.
        u = await _client(nfs_server)
        u1 = await u.exchange_id()
        u.verifier = b"newverf!"
        u2 = await u.exchange_id()
        assert u2.clientid != u1.clientid
        r = await u.compound([(Op.CREATE_SESSION, CreateSessionArgs(u1.clientid, u1.sequenceid))])
        assert r.status == Stat.STALE_CLIENTID
        for x in (a, b, a2, n, u):
            await x.close()

    run(main())


def test_create_session_sequencing_and_destroy(nfs_server: NfsServer) -> None:
    async def main() -> None:
        c = await _client(nfs_server)
        ex = await c.exchange_id()
        args = CreateSessionArgs(c.clientid, ex.sequenceid, 0, ChannelAttrs(0, 1 << 20, 1 << 20, 4096, 8, 4),
                                 ChannelAttrs(0, 4096, 4096, 0, 2, 1))
        r1 = await c.compound([(Op.CREATE_SESSION, args)])
        r2 = await c.compound([(Op.CREATE_SESSION, args)])  # a retry: the same session
        assert r1.status == 0 and r1.results[0][1].sessionid == r2.results[0][1].sessionid  # type: ignore[attr-defined]
        args.sequence += 5
        r3 = await c.compound([(Op.CREATE_SESSION, args)])
        assert r3.status == Stat.SEQ_MISORDERED
        sid = r1.results[0][1].sessionid  # type: ignore[attr-defined]
        # Tiny channel sizes cannot work.
        args.sequence = ex.sequenceid + 1
        args.fore = ChannelAttrs(0, 60, 60, 0, 8, 4)
        assert (await c.compound([(Op.CREATE_SESSION, args)])).status == Stat.TOOSMALL
        # The server's limits cap what the client asks for.
        args.fore = ChannelAttrs(0, 1 << 30, 1 << 30, 1 << 30, 10000, 10000)
        r = await c.compound([(Op.CREATE_SESSION, args)])
        fore = r.results[0][1].fore  # type: ignore[attr-defined]
        assert fore.maxoperations <= 64 and fore.maxrequests <= 64 and fore.maxresponsesize_cached <= 16384
        # A client id with sessions cannot be destroyed.
        r = await c.compound([(Op.DESTROY_CLIENTID, ClientIdArgs(c.clientid))])
        assert r.status == Stat.CLIENTID_BUSY
        assert (await c.compound([(Op.DESTROY_SESSION, SessionIdArgs(sid))])).status == 0
        assert (await c.compound([(Op.DESTROY_SESSION, SessionIdArgs(sid))])).status == Stat.BADSESSION
        await c.close()

    run(main())


def test_reclaim_complete_and_position_rules(nfs_server: NfsServer) -> None:
    async def main() -> None:
        c = await _client(nfs_server)
        await c.establish()
        await c.reclaim_complete()
        r = await c.seq_raw([(Op.RECLAIM_COMPLETE, __import__("securenfs.nfs4.xdr4", fromlist=["x"]).ReclaimCompleteArgs(False))])
        assert r.status == Stat.COMPLETE_ALREADY
        # Ops other than the session ops need SEQUENCE first.
        r = await c.compound([(Op.PUTROOTFH, V), (Op.GETFH, V)])
        assert r.status == Stat.OP_NOT_IN_SESSION and len(r.results) == 1
        # EXCHANGE_ID without SEQUENCE must be alone.
        r = await c.compound([(Op.EXCHANGE_ID, ExchangeIdArgs(c.verifier, c.owner)), (Op.PUTROOTFH, V)])
        assert r.status == Stat.NOT_ONLY_OP
        # SEQUENCE anywhere but first.
        r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.SEQUENCE, SequenceArgs(c.sessionid, 1, 0, 0, False))])
        assert r.status == Stat.SEQUENCE_POS and len(r.results) == 3
        # More ops than the session's ca_maxoperations (16).
        r = await c.seq_raw([(Op.PUTROOTFH, V)] * 20)
        assert r.status == Stat.TOO_MANY_OPS and len(r.results) == 1
        # Evaluation stops at the first error: GETFH after a failed LOOKUP is not run.
        from securenfs.nfs4.xdr4 import NameArgs

        r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.LOOKUP, NameArgs(b"nothing")), (Op.GETFH, V)])
        assert r.status == Stat.NOENT and len(r.results) == 3
        # No current file handle.
        r = await c.seq_raw([(Op.GETFH, V)])
        assert r.status == Stat.NOFILEHANDLE
        r = await c.seq_raw([(Op.RESTOREFH, V)])
        assert r.status == Stat.RESTOREFH
        # Optional ops not built answer NOTSUPP; 4.0-only ops too.
        r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.OPENATTR, V)])
        assert r.status == Stat.NOTSUPP and r.results[-1][0] == Op.OPENATTR
        await c.destroy_session()
        await c.destroy_clientid()
        await c.close()

    run(main())
