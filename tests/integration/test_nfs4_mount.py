"""End to end over loopback with the project's client: the mount sequence, GETATTR, READDIR
of a large directory, file handles across a restart, forged and stale handles, client rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.config import ClientRule
from securenfs.nfs4.fattr import set_to_bitmap
from securenfs.nfs4.xdr4 import BitmapArgs, FhArgs, NameArgs, ReaddirArgs, VoidArgs
from securenfs.proto.constants import Attr, Op, Stat
from tests.support.nfsserver import NfsServer, run

V = VoidArgs()


async def _client(srv: NfsServer) -> Nfs4Client:
    return await Nfs4Client.connect("127.0.0.1", srv.port)


def test_mount_sequence_and_getattr(nfs_server: NfsServer) -> None:
    (nfs_server.paths["/a"] / "f").write_bytes(b"x" * 1000)

    async def main() -> None:
        c = await _client(nfs_server)
        fh = await c.mount("/a")
        attrs = await c.getattr(fh, [a for a in (
            Attr.SUPPORTED_ATTRS, Attr.TYPE, Attr.FH_EXPIRE_TYPE, Attr.CHANGE, Attr.SIZE, Attr.FSID,
            Attr.LEASE_TIME, Attr.FILEHANDLE, Attr.FILEID, Attr.MODE, Attr.NUMLINKS, Attr.OWNER,
            Attr.OWNER_GROUP, Attr.SPACE_AVAIL, Attr.SPACE_TOTAL, Attr.MAXREAD, Attr.MAXNAME,
            Attr.MOUNTED_ON_FILEID, Attr.SUPPATTR_EXCLCREAT, Attr.RDATTR_ERROR, Attr.TIME_MODIFY)])
        st = os.stat(nfs_server.paths["/a"])
        assert attrs[Attr.TYPE] == 2
        assert attrs[Attr.FILEID] == st.st_ino
        assert attrs[Attr.FILEHANDLE] == fh
        assert attrs[Attr.LEASE_TIME] == 90
        assert attrs[Attr.MODE] == st.st_mode & 0o7777
        assert attrs[Attr.OWNER] == str(st.st_uid)
        assert attrs[Attr.SPACE_TOTAL] > 0
        assert attrs[Attr.MAXNAME] == 255
        assert attrs[Attr.RDATTR_ERROR] == 0
        # The export root sits on the pseudo directory /a: mounted_on_fileid differs.
        assert attrs[Attr.MOUNTED_ON_FILEID] != st.st_ino
        root = await c.lookup_path("/")
        rattrs = await c.getattr(root, [Attr.FSID, Attr.FILEID])
        assert rattrs[Attr.FSID] != attrs[Attr.FSID]  # crossing into the export changes fsid
        f = await c.lookup_path("/a/f")
        fa = await c.getattr(f, [Attr.SIZE, Attr.TYPE])
        assert fa == {Attr.SIZE: 1000, Attr.TYPE: 1}
        # LOOKUPP from the export root climbs into the pseudo directory, then the root.
        rep = await c.seq([(Op.PUTFH, FhArgs(fh)), (Op.LOOKUPP, V), (Op.GETFH, V)])
        assert rep.results[-1][1].fh == root  # type: ignore[attr-defined]
        rep = await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUPP, V)])
        await c.close()

    with pytest.raises(Nfs4Error) as ei:
        run(main())
    assert ei.value.status == Stat.NOENT and ei.value.op == Op.LOOKUPP


def test_minor_version_probe_falls_back(nfs_server: NfsServer) -> None:
    async def main() -> None:
        c = await _client(nfs_server)
        rep = await c.compound([(Op.PUTROOTFH, V)], tag=b"probe", minorversion=2)
        assert rep.status == Stat.MINOR_VERS_MISMATCH and rep.tag == b"probe" and rep.results == []
        await c.establish()
        rep = await c.seq([(Op.PUTROOTFH, V), (Op.GETFH, V)], tag=b"mount")
        assert rep.status == 0 and rep.tag == b"mount"
        await c.close()

    run(main())


def test_readdir_10000_entries_in_pages(nfs_server: NfsServer) -> None:
    d = nfs_server.paths["/a"] / "big"
    d.mkdir()
    names = {f"file-{i:05d}" for i in range(10000)}
    for n in names:
        (d / n).touch()

    async def main() -> None:
        c = await _client(nfs_server)
        await c.establish()
        fh = await c.lookup_path("/a/big")
        seen: list[bytes] = []
        cookie, verf, pages = 0, b"\0" * 8, 0
        while True:
            page = await c.readdir_page(fh, cookie, verf, dircount=2048, maxcount=8192,
                                        attrs=[Attr.TYPE, Attr.FILEID, Attr.RDATTR_ERROR])
            pages += 1
            assert page.status == 0
            for e in page.entries:
                seen.append(e.name)
                cookie = e.cookie
            verf = page.cookieverf
            if page.eof:
                break
        assert pages > 20
        assert len(seen) == len(set(seen)) == 10000
        assert {s.decode() for s in seen} == names
        # maxcount too small for a single entry
        rep = await c.seq_raw([(Op.PUTFH, FhArgs(fh)), (Op.READDIR, ReaddirArgs(0, b"\0" * 8, 0, 20, []))])
        assert rep.results[-1][1].status == Stat.TOOSMALL  # type: ignore[attr-defined]
        await c.close()

    run(main())


def test_handles_survive_restart_and_forgeries_fail(tmp_path: Path) -> None:
    srv = NfsServer(tmp_path, [("/a", ["sys"])])
    (srv.paths["/a"] / "keep").write_text("k")
    (srv.paths["/a"] / "gone").write_text("g")
    srv.start()
    try:
        async def first() -> tuple[bytes, bytes]:
            c = await _client(srv)
            await c.establish()
            keep, gone = await c.lookup_path("/a/keep"), await c.lookup_path("/a/gone")
            await c.close()
            return keep, gone

        keep, gone = run(first())
        srv.restart()
        (srv.paths["/a"] / "gone").unlink()

        async def second() -> None:
            c = await _client(srv)
            await c.establish()
            a = await c.getattr(keep, [Attr.SIZE])
            assert a[Attr.SIZE] == 1
            rep = await c.seq_raw([(Op.PUTFH, FhArgs(gone)), (Op.GETATTR, BitmapArgs(set_to_bitmap([Attr.SIZE])))])
            assert rep.results[-1][1].status == Stat.STALE  # type: ignore[attr-defined]
            for bad in (keep[:-1] + bytes([keep[-1] ^ 1]), keep[:10], b"", b"\0" * 128, keep + b"x"):
                rep = await c.seq_raw([(Op.PUTFH, FhArgs(bad)), (Op.GETATTR, BitmapArgs([1]))])
                assert rep.results[1][1].status == Stat.BADHANDLE, bad  # type: ignore[attr-defined]
            assert (await c.getattr(keep, [Attr.SIZE]))[Attr.SIZE] == 1  # still serving
            await c.close()

        run(second())
    finally:
        srv.stop()


def test_client_rules_refuse_before_any_data(tmp_path: Path) -> None:
    srv = NfsServer(tmp_path, [("/open", ["sys"]), ("/closed", ["sys"], [ClientRule(match="10.9.0.0/16")])])
    (srv.paths["/closed"] / "secret").write_text("s")
    srv.start()
    try:
        async def main() -> None:
            c = await _client(srv)
            await c.establish()
            # The handle itself is valid (made by the server's own codec), but this client is
            # not in the export's rules: every use is refused.
            codec = srv.server.nfs.service.ns.codec  # type: ignore[union-attr]
            fs = srv.server.nfs.service.ns.fs  # type: ignore[union-attr]
            export = next(e for e in srv.server.nfs.service.ns.table.exports if e.pseudo == "/closed")  # type: ignore[union-attr]
            secret = fs[export.export_id].fh_for_path(srv.paths["/closed"] / "secret")
            assert codec.parse(secret)
            for ops in ([(Op.GETATTR, BitmapArgs([0x10]))], [(Op.GETFH, V)],
                        [(Op.LOOKUPP, V)], [(Op.READLINK, V)]):
                rep = await c.seq_raw([(Op.PUTFH, FhArgs(secret)), *ops])
                assert rep.status in (Stat.ACCESS, Stat.WRONGSEC), (ops, rep.status)
                assert len(rep.results) <= 3
            rep = await c.seq_raw([(Op.PUTROOTFH, V), (Op.LOOKUP, NameArgs(b"closed")), (Op.GETFH, V)])
            assert rep.status in (Stat.ACCESS, Stat.NOENT)
            # The pseudo root does not even list the refused export.
            root = await c.lookup_path("/")
            assert [e[1] for e in await c.readdir_all(root)] == [b"open"]
            await c.close()

        run(main())
    finally:
        srv.stop()
