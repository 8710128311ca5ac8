"""Client-supplied numbers out of the range the kernel takes: device numbers, times, sizes,
offsets and ranges.  Each gets the RFC's error (never NFS4ERR_SERVERFAULT), and the server
then serves a good request.

The operation under test is built by hand with struct, field by field as RFC 8881 §18 lays
it out, so a value our own client would refuse to encode still reaches the server.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from securenfs.client.nfs4 import Nfs4Client
from securenfs.nfs4.fattr import set_to_bitmap
from securenfs.nfs4.xdr4 import FhArgs, SequenceArgs, VoidArgs, unpack_compound_reply
from securenfs.proto.constants import Attr, FType, Op, Stat
from securenfs.xdr import Packer, Unpacker
from tests.support.nfsserver import NfsServer, mounted_client, run

ANON = b"\0" * 16


@pytest.fixture
def dev_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """One sys export /a that allows devices (so CREATE reaches the device number)."""
    srv = NfsServer(tmp_path, [("/a", ["sys"])])
    srv.cfg.exports[0].allow_devices = True
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _fattr(attrs: list[tuple[int, bytes]]) -> bytes:
    """fattr4 (RFC 8881 §3.3.9): bitmap4 then the values in attribute order, as opaque."""
    mask = set_to_bitmap([a for a, _ in attrs])
    vals = b"".join(v for _, v in sorted(attrs))
    return struct.pack(">I", len(mask)) + b"".join(struct.pack(">I", w) for w in mask) + _opaque(vals)


def _opaque(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def _settime(sec: int, nsec: int) -> bytes:
    """settime4 with SET_TO_CLIENT_TIME4: time_how4, then nfstime4 {int64 seconds; uint32 nseconds}."""
    return struct.pack(">IqI", 1, sec, nsec)


async def _call(c: Nfs4Client, fh: bytes, op: bytes, count: int = 3) -> tuple[int, list[tuple[int, object]]]:
    """SEQUENCE, PUTFH ``fh`` and the hand-built ``op``: (status, results)."""
    p = Packer()
    p.opaque(b"bounds")
    p.u32(1)
    p.u32(count)
    p.u32(Op.SEQUENCE)
    SequenceArgs(c.sessionid, c.next_seqid(0), 0, 0, False).pack(p)
    p.u32(Op.PUTFH)
    FhArgs(fh).pack(p)
    p.raw(op)
    r = unpack_compound_reply(Unpacker(await c.raw(p.getvalue())))
    c.advance(0)
    return r.status, r.results


async def _alive(c: Nfs4Client, fh: bytes) -> None:
    r = await c.seq_raw([(Op.PUTFH, FhArgs(fh)), (Op.GETFH, VoidArgs())])
    assert r.status == Stat.OK


@pytest.mark.parametrize("major,minor", [
    (1 << 31, 0), (0, 1 << 31), (0xFFFFFFFF, 0xFFFFFFFF), (4096, 0), (0, 1 << 20),
])
def test_create_device_numbers_out_of_range(dev_server: NfsServer, major: int, minor: int) -> None:
    # RFC 8881 §18.4.3 (CREATE of NF4BLK/NF4CHR carries specdata4); numbers no Linux device
    # can have are valid XDR but invalid arguments: NFS4ERR_INVAL (§15.1.1.4).
    async def main() -> None:
        c, root = await mounted_client(dev_server, "/a", slots=1)
        for ftype in (FType.BLK, FType.CHR):
            op = struct.pack(">III", Op.CREATE, ftype, major) + struct.pack(">I", minor) + _opaque(b"dev") + _fattr([])
            status, res = await _call(c, root, op)
            assert status == Stat.INVAL and res[-1][0] == Op.CREATE, (ftype, status)
        assert not (dev_server.paths["/a"] / "dev").exists()
        # The largest numbers that fit are created.
        op = struct.pack(">IIII", Op.CREATE, FType.CHR, 4095, (1 << 20) - 1) + _opaque(b"dev") + _fattr([])
        status, _ = await _call(c, root, op)
        assert status == Stat.OK
        st = os.lstat(dev_server.paths["/a"] / "dev")
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (4095, (1 << 20) - 1)
        await _alive(c, root)
        await c.close()

    run(main())


@pytest.mark.parametrize("sec,nsec", [
    (1 << 62, 0), (-(1 << 62), 0), ((1 << 63) - 1, 999_999_999), (0, 1_000_000_000), (0, 0xFFFFFFFF),
])
def test_setattr_times_out_of_range(state_server: NfsServer, sec: int, nsec: int) -> None:
    # RFC 8881 §3.3.1: nfstime4 nseconds counts nanoseconds (below 10**9); seconds the file
    # system cannot hold are an invalid argument (§15.1.1.4), for SETATTR (§18.30) and CREATE.
    async def main() -> None:
        c, root = await mounted_client(state_server, "/a", slots=1)
        f = await c.open(root, "t", create=True)
        for attr in (Attr.TIME_ACCESS_SET, Attr.TIME_MODIFY_SET):
            op = struct.pack(">I", Op.SETATTR) + ANON + _fattr([(attr, _settime(sec, nsec))])
            status, res = await _call(c, f.fh, op)
            assert status == Stat.INVAL and res[-1][0] == Op.SETATTR, (attr, status)
        op = (struct.pack(">II", Op.CREATE, FType.DIR) + _opaque(b"d")
              + _fattr([(Attr.TIME_MODIFY_SET, _settime(sec, nsec))]))
        status, _ = await _call(c, root, op)
        assert status == Stat.INVAL
        assert not (state_server.paths["/a"] / "d").exists()
        # A good time is set.
        op = struct.pack(">I", Op.SETATTR) + ANON + _fattr([(Attr.TIME_MODIFY_SET, _settime(1_000_000_000, 5))])
        status, _ = await _call(c, f.fh, op)
        assert status == Stat.OK
        assert os.stat(state_server.paths["/a"] / "t").st_mtime_ns == 1_000_000_000 * 10**9 + 5
        await c.close()

    run(main())


def test_sizes_offsets_and_ranges(state_server: NfsServer) -> None:
    async def main() -> None:
        c, root = await mounted_client(state_server, "/a", slots=1)
        f = await c.open(root, "r", create=True)
        top = (1 << 64) - 1
        # RFC 8881 §18.30.3 / §15.1.4.4: a size past the largest file is NFS4ERR_FBIG.
        op = struct.pack(">I", Op.SETATTR) + f.stateid + _fattr([(Attr.SIZE, struct.pack(">Q", top))])
        assert (await _call(c, f.fh, op))[0] == Stat.FBIG
        # §18.32.3 WRITE past the largest offset: NFS4ERR_FBIG.
        for off in (top, 1 << 63, (1 << 63) - 2):
            op = struct.pack(">I", Op.WRITE) + f.stateid + struct.pack(">QI", off, 2) + _opaque(b"xy")
            assert (await _call(c, f.fh, op))[0] == Stat.FBIG, off
        # §18.22.3 READ at any offset is answered (past the end: no data, eof).
        op = struct.pack(">I", Op.READ) + f.stateid + struct.pack(">QI", top, 0xFFFFFFFF)
        assert (await _call(c, f.fh, op))[0] == Stat.OK
        # §18.3.3 COMMIT whose offset + count passes 2**64: NFS4ERR_INVAL.
        op = struct.pack(">IQI", Op.COMMIT, top, 2)
        assert (await _call(c, f.fh, op))[0] == Stat.INVAL
        # §18.10.3 / §18.11.3 LOCKT whose range passes 2**64, or has length 0: NFS4ERR_INVAL.
        owner = struct.pack(">Q", c.clientid) + _opaque(b"lo")
        for off, length in ((top, 2), (3, top - 1), (0, 0)):
            op = struct.pack(">IIQQ", Op.LOCKT, 2, off, length) + owner
            assert (await _call(c, f.fh, op))[0] == Stat.INVAL, (off, length)
        await _alive(c, root)
        await c.close()

    run(main())
