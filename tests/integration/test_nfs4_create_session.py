"""CREATE_SESSION as RFC 8881 §18.36 writes it: replays answered from the client id's own
reply slot, csa_flags checked, fore-channel attributes negotiated down, and the negotiated
ca_maxresponsesize / ca_maxresponsesize_cached enforced on every reply (§2.10.6.4)."""

from __future__ import annotations

from typing import Any

import pytest

from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import AuthSys
from securenfs.nfs4.xdr4 import (
    ChannelAttrs,
    CreateSessionArgs,
    CreateSessionRes,
    FhArgs,
    NameArgs,
    ReadArgs,
    SequenceArgs,
    VoidArgs,
    unpack_compound_reply,
)
from securenfs.proto.constants import Op, Stat
from securenfs.state.sessions import (
    MIN_CB_SEQUENCE_REPLY,
    MIN_CB_SEQUENCE_REQUEST,
    MIN_SEQUENCE_REPLY,
    MIN_SEQUENCE_REQUEST,
    ServerLimits,
)
from securenfs.xdr import Unpacker
from tests.support.nfsserver import NfsServer, mounted_client, run

V = VoidArgs()
BACK = ChannelAttrs(0, 4096, 4096, 0, 2, 1)
ANON = b"\0" * 16
#: The RPC accepted-reply header with AUTH_SYS's null verifier (RFC 5531 §9).
RPC_REPLY_HEADER = 24


def _decode(raw: bytes) -> Any:
    return unpack_compound_reply(Unpacker(raw))


async def _exchanged(srv: NfsServer) -> Nfs4Client:
    c = await Nfs4Client.connect("127.0.0.1", srv.port, AuthSys(uid=0, gid=0))
    await c.exchange_id()
    return c


def test_a_new_client_starts_at_sequence_id_1(nfs_server: NfsServer) -> None:
    # The next CREATE_SESSION of a new client id is csa_sequence 1 and the one after it 2,
    # whichever session it is sent in (as the Linux server numbers them).
    async def main() -> None:
        c = await _exchanged(nfs_server)
        try:
            assert c.exchange is not None and c.exchange.sequenceid == 1
            first = await c.create_session()
            r = await c.seq_raw([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, 2, 0, ChannelAttrs(), BACK))])
            assert r.status == 0
            second = r.results[-1][1]
            assert isinstance(second, CreateSessionRes) and second.sessionid != first.sessionid
            # Its retry without SEQUENCE is the same reply.
            again = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, 2, 0, ChannelAttrs(), BACK))])
            assert again.results[0][1] == second
        finally:
            await c.close()

    run(main())


def test_create_session_replay_is_answered_from_the_cache(nfs_server: NfsServer) -> None:
    # RFC 8881 §18.36.4: CREATE_SESSION has its own slot per client ID; a csa_sequence equal
    # to that slot's sequence ID is a retry, answered with the cached reply -- also once the
    # session it created is in use.  An older sequence ID is misordered.
    async def main() -> None:
        c = await _exchanged(nfs_server)
        try:
            assert c.exchange is not None
            seq = c.exchange.sequenceid
            args = c.encode([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq, 0, ChannelAttrs(), BACK))])
            first = await c.raw(args)
            res = _decode(first).results[0][1]
            assert isinstance(res, CreateSessionRes) and res.sequence == seq
            # Use the session, then retransmit.
            r = await c.compound([(Op.SEQUENCE, SequenceArgs(res.sessionid, 1, 0, 0, False)), (Op.PUTROOTFH, V)])
            assert r.status == 0
            assert await c.raw(args) == first
            # The next sequence id makes a second session; its retry is answered from the
            # cache too, and the first one's is now misordered.
            args2 = c.encode([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq + 1, 0, ChannelAttrs(), BACK))])
            second = await c.raw(args2)
            res2 = _decode(second).results[0][1]
            assert isinstance(res2, CreateSessionRes) and res2.sessionid != res.sessionid
            assert await c.raw(args2) == second
            assert _decode(await c.raw(args)).status == Stat.SEQ_MISORDERED
            r = await c.compound([(Op.SEQUENCE, SequenceArgs(res.sessionid, 2, 0, 0, False)), (Op.PUTROOTFH, V)])
            assert r.status == 0
        finally:
            await c.close()

    run(main())


@pytest.mark.parametrize("flags", [0x8, 0x10, 0x80000000])
def test_unknown_csa_flags_are_inval(nfs_server: NfsServer, flags: int) -> None:
    # RFC 8881 §18.36.3 defines CREATE_SESSION4_FLAG_PERSIST, _CONN_BACK_CHAN and _CONN_RDMA;
    # any other bit is an invalid argument.  The sequence id is not used up.
    async def main() -> None:
        c = await _exchanged(nfs_server)
        try:
            assert c.exchange is not None
            seq = c.exchange.sequenceid
            r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq, flags | 0x1, ChannelAttrs(),
                                                                        BACK))])
            assert r.status == Stat.INVAL
            r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq, 0x1, ChannelAttrs(), BACK))])
            assert r.status == 0
            res = r.results[0][1]
            assert isinstance(res, CreateSessionRes) and res.flags == 0  # no persistent reply cache
        finally:
            await c.close()

    run(main())


_TOOSMALL = [
    ("request cannot carry SEQUENCE", ChannelAttrs(0, MIN_SEQUENCE_REQUEST - 1, 4096, 4096, 8, 4), BACK),
    ("reply cannot carry SEQUENCE", ChannelAttrs(0, 4096, MIN_SEQUENCE_REPLY - 1, 4096, 8, 4), BACK),
    ("reply of 0 bytes", ChannelAttrs(0, 8192, 0, 8192, 128, 8), BACK),
    ("no operation", ChannelAttrs(0, 4096, 4096, 4096, 0, 4), BACK),
    ("no slot", ChannelAttrs(0, 4096, 4096, 4096, 8, 0), BACK),
    ("backchannel cannot carry CB_SEQUENCE", ChannelAttrs(), ChannelAttrs(0, MIN_CB_SEQUENCE_REQUEST - 1, 4096, 0, 2, 1)),
    ("backchannel reply too small", ChannelAttrs(), ChannelAttrs(0, 4096, MIN_CB_SEQUENCE_REPLY - 1, 0, 2, 1)),
]


def test_fore_channel_is_negotiated_down(nfs_server: NfsServer) -> None:
    # RFC 8881 §18.36.3: the server may lower what the client asked for; NFS4ERR_TOOSMALL is
    # for values that cannot carry a SEQUENCE request or reply at all.
    async def main() -> None:
        c = await _exchanged(nfs_server)
        try:
            assert c.exchange is not None
            seq = c.exchange.sequenceid
            for what, fore, back in _TOOSMALL:
                r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq, 0, fore, back))])
                assert r.status == Stat.TOOSMALL, what
            # Small but usable sizes are granted as asked (they used to be refused), and so is a
            # reply cache too small for any reply.
            small = ChannelAttrs(0, MIN_SEQUENCE_REQUEST, MIN_SEQUENCE_REPLY, 10, 1, 1)
            r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq, 0, small, BACK))])
            assert r.status == 0
            res = r.results[0][1]
            assert isinstance(res, CreateSessionRes)
            got = res.fore
            assert (got.maxrequestsize, got.maxresponsesize, got.maxresponsesize_cached, got.maxoperations,
                    got.maxrequests) == (MIN_SEQUENCE_REQUEST, MIN_SEQUENCE_REPLY, 10, 1, 1)
            # sa_cachethis: not even SEQUENCE's reply can be cached, SEQUENCE says so and the
            # slot is not used up.  Without it a lone SEQUENCE fits; a second operation exceeds
            # ca_maxoperations.
            r = await c.compound([(Op.SEQUENCE, SequenceArgs(res.sessionid, 1, 0, 0, True))])
            assert r.status == Stat.REP_TOO_BIG_TO_CACHE and r.results[0][0] == Op.SEQUENCE
            r = await c.compound([(Op.SEQUENCE, SequenceArgs(res.sessionid, 1, 0, 0, False))])
            assert r.status == 0
            r = await c.compound([(Op.SEQUENCE, SequenceArgs(res.sessionid, 2, 0, 0, False)), (Op.PUTROOTFH, V)])
            assert r.status == Stat.TOO_MANY_OPS
            # A tag so long that SEQUENCE's own reply would pass ca_maxresponsesize.
            tight = ChannelAttrs(0, 4096, MIN_SEQUENCE_REPLY, 0, 4, 1)
            r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq + 1, 0, tight, BACK))])
            res = r.results[0][1]
            assert r.status == 0 and isinstance(res, CreateSessionRes)
            r = await c.compound([(Op.SEQUENCE, SequenceArgs(res.sessionid, 1, 0, 0, False))], tag=b"t" * 64)
            assert r.status == Stat.REP_TOO_BIG and r.results[0][0] == Op.SEQUENCE
            r = await c.compound([(Op.SEQUENCE, SequenceArgs(res.sessionid, 1, 0, 0, False))])
            assert r.status == 0
            # Huge values are lowered to the server's limits; a cache size of 0 stays 0.
            lim = ServerLimits()
            huge = ChannelAttrs(64, 1 << 30, 1 << 30, 0, 100000, 100000)
            r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq + 2, 0, huge, BACK))])
            res = r.results[0][1]
            assert r.status == 0 and isinstance(res, CreateSessionRes)
            got = res.fore
            assert (got.headerpadsize, got.maxrequestsize, got.maxresponsesize, got.maxresponsesize_cached,
                    got.maxoperations, got.maxrequests) == (0, lim.max_request, lim.max_response, 0,
                                                            lim.max_operations, lim.max_slots)
        finally:
            await c.close()

    run(main())


def test_reply_sizes_are_enforced(nfs_server: NfsServer) -> None:
    # RFC 8881 §2.10.6.4 and §15.1.3 (NFS4ERR_REP_TOO_BIG, NFS4ERR_REP_TOO_BIG_TO_CACHE): a reply larger than ca_maxresponsesize is
    # NFS4ERR_REP_TOO_BIG; with sa_cachethis, one larger than ca_maxresponsesize_cached is
    # NFS4ERR_REP_TOO_BIG_TO_CACHE.  The sizes count the whole RPC reply, tag included.
    max_reply, max_cached = 700, 300
    (nfs_server.paths["/a"] / "data").write_bytes(bytes(range(256)) * 8)

    async def main() -> None:
        c, root = await mounted_client(nfs_server, auth=AuthSys(uid=0, gid=0))
        try:
            await c.exchange_id()
            await c.create_session(fore=ChannelAttrs(0, 4096, max_reply, max_cached, 8, 2))
            got = await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"data")), (Op.GETFH, V)])
            fh = got.results[-1][1].fh  # type: ignore[union-attr]
            fits = too_big = 0
            for tag in (b"", b"t" * 200):
                for count in range(300, 700, 8):
                    seq = c.next_seqid(0)
                    raw = await c.raw(c.encode([(Op.SEQUENCE, SequenceArgs(c.sessionid, seq, 0, 1, False)),
                                                (Op.PUTFH, FhArgs(fh)), (Op.READ, ReadArgs(ANON, 0, count))], tag))
                    c.advance(0)
                    r = _decode(raw)
                    # Whatever the answer, the reply on the wire fits ca_maxresponsesize.
                    assert len(raw) + RPC_REPLY_HEADER <= max_reply, (tag, count, len(raw))
                    if r.status == 0:
                        fits += 1
                        assert len(r.results[-1][1].data) == count  # type: ignore[union-attr]
                    else:
                        assert r.status == Stat.REP_TOO_BIG and r.results[-1][0] == Op.READ
                        too_big += 1
            assert fits and too_big
            # sa_cachethis with a reply over ca_maxresponsesize_cached: REP_TOO_BIG_TO_CACHE;
            # without it the same READ succeeds, is not cached, and its retry says so.
            ops = [(Op.PUTFH, FhArgs(fh)), (Op.READ, ReadArgs(ANON, 0, 400))]
            r = await c.seq_raw(ops, cachethis=True, slot=0)
            c.advance(0)
            assert r.status == Stat.REP_TOO_BIG_TO_CACHE and r.results[-1][0] == Op.READ
            seq = c.next_seqid(0)
            r = await c.seq_raw(ops, slot=0, seqid=seq)
            assert r.status == 0
            r = await c.seq_raw(ops, slot=0, seqid=seq)
            assert r.status == Stat.RETRY_UNCACHED_REP
            c.advance(0)
            # A small READ with sa_cachethis is cached: the retry is byte for byte the same.
            seq = c.next_seqid(0)
            args = c.encode([(Op.SEQUENCE, SequenceArgs(c.sessionid, seq, 0, 1, True)), (Op.PUTFH, FhArgs(fh)),
                             (Op.READ, ReadArgs(ANON, 0, 100))])
            first = await c.raw(args)
            assert _decode(first).status == 0 and await c.raw(args) == first
            c.advance(0)
            r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.GETFH, V)])
            assert r.status == 0
        finally:
            await c.close()

    run(main())
