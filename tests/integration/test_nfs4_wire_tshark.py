"""Our wire format checked by a decoder that is not ours: every operation the server
implements, with successful and error replies, under AUTH_SYS and krb5i, captured on loopback
with dumpcap and decoded by Wireshark's RPC and NFS dissectors (tshark).  No frame may be
malformed or carry an expert error, and the dissector must find every operation we drove and
the error statuses we provoked.  krb5p bodies are opaque to the dissector, so krb5i is the
Kerberos flavor checked.  Skipped with a loud banner when tshark is not installed.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.nfs4 import ANON_STATEID, Nfs4Client, fattr_of
from securenfs.client.rpc import AuthSys
from securenfs.config import ClientRule
from securenfs.nfs4 import fattr
from securenfs.nfs4.optable import NOT_BUILT, OPTABLE
from securenfs.nfs4.xdr4 import (
    AccessArgs,
    BindConnArgs,
    BitmapArgs,
    ChannelAttrs,
    ClientIdArgs,
    CreateSessionArgs,
    FattrArgs,
    FhArgs,
    NameArgs,
    ReadArgs,
    SequenceArgs,
    SetattrArgs,
    VoidArgs,
)
from securenfs.proto.constants import Access4, Attr, Op, Stat
from tests.support import wirecheck
from tests.support.nfsserver import NfsServer, RawArgs, flavor_client, status_of

V = VoidArgs()
ROOT = AuthSys(uid=0, gid=0)
BACK = ChannelAttrs(0, 4096, 4096, 0, 2, 1)
#: Operations whose replies we provoke on purpose, by status.
PROVOKED = {Stat.INVAL, Stat.SYMLINK, Stat.NOENT, Stat.DENIED, Stat.SHARE_DENIED, Stat.REP_TOO_BIG,
            Stat.REP_TOO_BIG_TO_CACHE, Stat.TOOSMALL, Stat.NOTSUPP, Stat.GRACE, Stat.SEQ_MISORDERED,
            Stat.BADSESSION, Stat.NOT_SAME, Stat.SAME, Stat.EXIST, Stat.ISDIR, Stat.BAD_STATEID}


@pytest.fixture(scope="module")
def wire_server(tmp_path_factory: pytest.TempPathFactory, kdc_realm: Any) -> Iterator[NfsServer]:
    if wirecheck.missing_tools():
        pytest.skip(wirecheck.skip_banner("NFS wire check"))
    tmp: Path = tmp_path_factory.mktemp("wire")
    srv = NfsServer(tmp, [("/a", ["sys", "krb5i"], [ClientRule(squash="none", anonuid=0, anongid=0)])],
                    kdc=kdc_realm)
    srv.start()
    srv.kdc = kdc_realm  # type: ignore[attr-defined]
    yield srv
    srv.stop()


async def _client(srv: NfsServer, flavor: str) -> Nfs4Client:
    return await flavor_client(srv, flavor, srv.kdc)  # type: ignore[attr-defined,no-any-return]


def _open_raw(name: bytes, owner: bytes, deny: int = 0) -> RawArgs:
    # OPEN4args (RFC 8881 §18.16.1), OPEN4_CREATE/UNCHECKED4, CLAIM_NULL, owner clientid 0.
    def opaque(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)
    return RawArgs(struct.pack(">IIIQ", 0, 3, deny, 0) + opaque(owner) + struct.pack(">IIIII", 1, 0, 0, 0, 0)
                   + opaque(name))


async def _drive(srv: NfsServer, flavor: str) -> None:
    d = srv.paths["/a"] / flavor
    d.mkdir()
    (d / "dir").mkdir()
    os.symlink("dir", d / "link")
    c = await _client(srv, flavor)
    other = await _client(srv, flavor)
    try:
        root = await c.mount(f"/a/{flavor}")
        oroot = await other.mount(f"/a/{flavor}")
        # Names, attributes, directories.
        await c.seq([(Op.PUTPUBFH, V), (Op.GETFH, V)])
        await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"dir")), (Op.LOOKUPP, V), (Op.GETFH, V),
                     (Op.ACCESS, AccessArgs(int(Access4.READ | Access4.LOOKUP))),
                     (Op.GETATTR, BitmapArgs(fattr.set_to_bitmap([Attr.TYPE, Attr.SIZE, Attr.MODE, Attr.OWNER])))])
        await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"link")), (Op.READLINK, V)])
        await c.seq([(Op.PUTFH, FhArgs(root)), (Op.SECINFO, NameArgs(b"dir"))])
        await c.secinfo_no_name(root)
        # OPEN (owner clientid 0), WRITE, COMMIT, READ, SETATTR, VERIFY/NVERIFY.
        f = await c.open(root, "file", create=True)
        await c.write(f.fh, 0, b"0123456789" * 100, f.stateid)
        await c.commit(f.fh)
        await c.read(f.fh, 0, 100, f.stateid)
        await c.setattr(f.fh, {Attr.MODE: 0o640})
        size = fattr_of({Attr.SIZE: 1000})
        await c.seq([(Op.PUTFH, FhArgs(f.fh)), (Op.VERIFY, FattrArgs(size))])
        assert (await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)), (Op.NVERIFY, FattrArgs(size))])).status == Stat.SAME
        r = await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)), (Op.VERIFY, FattrArgs(fattr_of({Attr.SIZE: 5})))])
        assert r.status == Stat.NOT_SAME
        r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.OPEN, _open_raw(b"raw", b"raw-owner", deny=3)),
                             (Op.GETFH, V)])
        assert r.status == 0
        # Locks, with a conflict (LOCK4denied on the wire), LOCKT, LOCKU.
        ls = await c.lock(f, 0, 10)
        g = await other.open(oroot, "file")
        assert await status_of(other.lock(g, 5, 10)) == Stat.DENIED
        assert (await other.lockt(f.fh, 5, 10)).status == Stat.DENIED
        ls = await c.locku(f.fh, ls, 0, 10)
        await c.free_stateid(ls)
        assert await status_of(other.open(oroot, "raw")) == Stat.SHARE_DENIED
        # State ops.
        await c.test_stateids([f.stateid, ANON_STATEID, b"\1" * 16])
        f.stateid = (await c.open(root, "file", access=1)).stateid  # a read OPEN folded in
        await c.open_downgrade(f, 1)
        await c.close_file(f)
        await other.close_file(g)
        # CREATE, LINK, RENAME, REMOVE, READDIR, SAVEFH/RESTOREFH.
        await c.create(root, "sub")
        await c.create(root, "sym", 5, link=b"file")
        await c.link(f.fh, root, "hard")
        await c.rename(root, "hard", root, "hard2")
        await c.remove(root, "hard2")
        await c.readdir_all(root, attrs=[Attr.TYPE, Attr.FILEID, Attr.SIZE, Attr.MODE, Attr.OWNER])
        await c.seq([(Op.PUTFH, FhArgs(root)), (Op.SAVEFH, V), (Op.PUTROOTFH, V), (Op.RESTOREFH, V), (Op.GETFH, V)])
        # Error replies: invalid UTF-8 name, LOOKUPP of a link, SETATTR errors (attrsset on
        # the wire), missing names, an existing name, a directory as a file, NOTSUPP.
        assert (await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"\xff\xfe"))])).status == Stat.INVAL
        r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"link")), (Op.LOOKUPP, V)])
        assert r.status == Stat.SYMLINK
        r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.SETATTR, SetattrArgs(ANON_STATEID,
                                                                              fattr_of({Attr.SIZE: 5})))])
        assert r.status == Stat.ISDIR
        assert await status_of(c.lookup_path(f"/a/{flavor}/nothing")) == Stat.NOENT
        assert await status_of(c.create(root, "sub")) == Stat.EXIST
        assert await status_of(c.read(f.fh, 0, 1, b"\0\0\0\1" + f.stateid[4:8] + b"\7" * 8)) == Stat.BAD_STATEID
        assert (await c.seq_raw([(Op.PUTROOTFH, V), (Op.DELEGPURGE, ClientIdArgs(c.clientid))])).status == Stat.NOTSUPP
        # Reply sizes: a session whose replies are small.
        await c.exchange_id()
        await c.create_session(fore=ChannelAttrs(0, 4096, 400, 200, 8, 2))
        read = [(Op.PUTFH, FhArgs(f.fh)), (Op.READ, ReadArgs(ANON_STATEID, 0, 600))]
        assert (await c.seq_raw(read)).status == Stat.REP_TOO_BIG
        read = [(Op.PUTFH, FhArgs(f.fh)), (Op.READ, ReadArgs(ANON_STATEID, 0, 100))]
        assert (await c.seq_raw(read, cachethis=True)).status == Stat.REP_TOO_BIG_TO_CACHE
        if flavor == "sys":
            # SETATTR4res carries attrsset with every status, REP_TOO_BIG included: a session
            # whose replies end right after PUTFH's result (SEQUENCE reply 80 bytes + 8).
            await c.exchange_id()
            await c.create_session(fore=ChannelAttrs(0, 4096, 92, 0, 8, 2))
            # Sent and read raw: only Wireshark decodes this reply.
            seq = c.next_seqid(0)
            raw = await c.raw(c.encode([(Op.SEQUENCE, SequenceArgs(c.sessionid, seq, 0, 1, False)),
                                        (Op.PUTFH, FhArgs(f.fh)),
                                        (Op.SETATTR, SetattrArgs(ANON_STATEID, fattr_of({Attr.MODE: 0o600})))]))
            c.advance(0)
            assert struct.unpack_from(">I", raw)[0] == Stat.REP_TOO_BIG
        # Sessions and client ids: TOOSMALL, unknown csa_flags, misordered, BIND_CONN,
        # DESTROY_SESSION, BADSESSION, DESTROY_CLIENTID, GRACE before RECLAIM_COMPLETE.
        assert c.exchange is not None
        seq = c.exchange.sequenceid
        r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq + 5, 0, ChannelAttrs(), BACK))])
        assert r.status == Stat.SEQ_MISORDERED
        r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq + 1, 0,
                                                                    ChannelAttrs(0, 40, 40, 0, 8, 4), BACK))])
        assert r.status == Stat.TOOSMALL
        r = await c.compound([(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, seq + 1, 0x10, ChannelAttrs(), BACK))])
        assert r.status == Stat.INVAL
        await c.compound([(Op.BIND_CONN_TO_SESSION, BindConnArgs(c.sessionid, 3))])
        await c.destroy_session()
        r = await c.compound([(Op.SEQUENCE, SequenceArgs(c.sessionid, 1, 0, 0, False))])
        assert r.status == Stat.BADSESSION
        fresh = await _client(srv, flavor)
        await fresh.establish()
        assert await status_of(fresh.open(root, "new", create=True)) == Stat.GRACE
        await fresh.destroy_session()
        await fresh.destroy_clientid()
        await fresh.close()
    finally:
        await c.close()
        await other.close()


def test_wire_format_decodes_cleanly_in_wireshark(wire_server: NfsServer, tmp_path: Path) -> None:
    cap = wirecheck.Capture([wire_server.port], tmp_path / "nfs.pcapng")
    cap.start()
    try:
        for flavor in ("sys", "krb5i"):
            asyncio.run(asyncio.wait_for(_drive(wire_server, flavor), 120))
    finally:
        cap.stop()
    dec = wirecheck.decode(tmp_path / "nfs.pcapng", [wire_server.port])
    assert dec.rpc_frames > 100, dec.summary()
    assert not dec.bad, dec.summary()
    implemented = {int(op) for op in OPTABLE if op not in NOT_BUILT}
    assert implemented - dec.opcodes == set(), sorted(Op(o).name for o in implemented - dec.opcodes)
    assert {int(s) for s in PROVOKED} - dec.statuses == set(), \
        sorted(Stat(s).name for s in {int(s) for s in PROVOKED} - dec.statuses)
