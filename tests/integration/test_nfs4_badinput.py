"""Hostile COMPOUNDs: huge op counts, lying counts, unknown ops, bad names.  Each gets the
status RFC 8881 gives it and the server keeps serving."""

from __future__ import annotations

import struct

import pytest

from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import RpcError
from securenfs.nfs4.xdr4 import (
    NameArgs,
    SecinfoNoNameArgs,
    SequenceArgs,
    VoidArgs,
    unpack_compound_reply,
)
from securenfs.proto.constants import Op, Stat
from securenfs.xdr import Packer, Unpacker
from tests.support.nfsserver import NfsServer, run

V = VoidArgs()


async def _alive(c: Nfs4Client) -> None:
    r = await c.seq([(Op.PUTROOTFH, V), (Op.GETFH, V)])
    assert r.status == 0


def _raw_compound(c: Nfs4Client, count: int, body: bytes, seq: bool = True) -> bytes:
    p = Packer()
    p.opaque(b"t")
    p.u32(1)
    p.u32(count)
    if seq:
        p.u32(Op.SEQUENCE)
        SequenceArgs(c.sessionid, c.next_seqid(0), 0, 0, False).pack(p)
    p.raw(body)
    return p.getvalue()


def test_ten_thousand_ops_and_lying_counts(nfs_server: NfsServer) -> None:
    async def main() -> None:
        c = await Nfs4Client.connect("127.0.0.1", nfs_server.port, slots=1)
        await c.establish()
        putroot = struct.pack(">I", Op.PUTROOTFH)
        r = unpack_compound_reply(Unpacker(await c.raw(_raw_compound(c, 10001, putroot * 10000))))
        assert r.status == Stat.TOO_MANY_OPS and len(r.results) == 1
        # Without SEQUENCE, 10,000 ops are refused on the first.
        r = unpack_compound_reply(Unpacker(await c.raw(_raw_compound(c, 10000, putroot * 10000, seq=False))))
        assert r.status == Stat.OP_NOT_IN_SESSION and len(r.results) == 1
        # The count says 5 but only 2 ops follow: evaluation stops with BADXDR at the third.
        r = unpack_compound_reply(Unpacker(await c.raw(_raw_compound(c, 6, putroot * 2))))
        assert r.status == Stat.BADXDR and len(r.results) == 4
        c.advance(0)
        # A count of 2**32-1.
        r = unpack_compound_reply(Unpacker(await c.raw(_raw_compound(c, 0xFFFFFFFF, putroot))))
        assert r.status == Stat.TOO_MANY_OPS
        # Truncated arguments (a LOOKUP whose name length runs past the end).
        body = putroot + struct.pack(">II", Op.LOOKUP, 1000) + b"abc"
        r = unpack_compound_reply(Unpacker(await c.raw(_raw_compound(c, 3, body))))
        assert r.status == Stat.BADXDR and r.results[-1][0] == Op.LOOKUP
        c.advance(0)
        # Unknown op numbers: OP_ILLEGAL, reported as op 10044 (RFC 8881 §15.2).
        for bad in (0, 1, 2, 59, 70, 10044, 0xFFFFFFFF):
            r = unpack_compound_reply(Unpacker(await c.raw(_raw_compound(c, 3, putroot + struct.pack(">I", bad)))))
            assert r.status == Stat.OP_ILLEGAL and r.results[-1][0] == Op.ILLEGAL, bad
            c.advance(0)
        # A truncated COMPOUND header is garbage at the RPC level.
        with pytest.raises(RpcError):
            await c.raw(b"\0\0\0\x05ab")
        await _alive(c)
        await c.close()

    run(main())


@pytest.mark.parametrize("name,status", [
    (b"", Stat.INVAL), (b"a/b", Stat.BADNAME), (b"a\0b", Stat.BADNAME), (b".", Stat.BADNAME),
    (b"..", Stat.BADNAME), (b"x" * 256, Stat.NAMETOOLONG), (b"\xff\xfe", Stat.INVAL),
])
def test_bad_names(nfs_server: NfsServer, name: bytes, status: int) -> None:
    async def main() -> None:
        c = await Nfs4Client.connect("127.0.0.1", nfs_server.port)
        await c.establish()
        for prefix in ([(Op.PUTROOTFH, V)], [(Op.PUTROOTFH, V), (Op.LOOKUP, NameArgs(b"a"))]):
            for op in (Op.LOOKUP, Op.SECINFO):
                r = await c.seq_raw([*prefix, (op, NameArgs(name))])
                assert r.status == status, (prefix, op)
        r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.SECINFO_NO_NAME, SecinfoNoNameArgs(0))])
        assert r.status == 0
        await _alive(c)
        await c.close()

    run(main())
