"""READ/WRITE/COMMIT, SETATTR and the namespace-changing operations against the real server:
stable writes, the write verifier across restarts, durability after kill -9, hostile offsets
and counts, change_info (RFC 8881 §18.3, §18.22, §18.32, §18.30, §18.4, §18.25-26, §18.9)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from securenfs.client.nfs4 import ANON_STATEID, Nfs4Client
from securenfs.client.rpc import AuthSys
from securenfs.nfs4.fattr import MAX_READ
from securenfs.nfs4.xdr4 import (
    DATA_SYNC4,
    FILE_SYNC4,
    UNSTABLE4,
    FattrArgs,
    FhArgs,
    SetattrArgs,
)
from securenfs.proto.constants import Attr, FType, Op, Stat
from tests.support.nfsserver import NfsServer, ProcessServer, mounted_client, run, status_of

BIG = (1 << 64) - 1


def test_stable_writes_commit_and_verifier_across_restart(state_server: NfsServer) -> None:
    path = state_server.paths["/a"] / "data"

    async def first() -> tuple[bytes, bytes]:
        c, root = await mounted_client(state_server)
        f = await c.open(root, "data", create=True)
        for i, how in enumerate((UNSTABLE4, DATA_SYNC4, FILE_SYNC4)):
            w = await c.write(f.fh, i * 4, b"abcd", f.stateid, stable=how)
            assert (w.count, w.committed) == (4, how)
            verf = w.verifier
        assert await c.commit(f.fh) == verf
        big = os.urandom(MAX_READ)
        assert (await c.write(f.fh, 12, big, f.stateid, stable=UNSTABLE4)).count == MAX_READ
        r = await c.read(f.fh, 12, MAX_READ, f.stateid)
        assert r.data == big and r.eof
        await c.close_file(f)
        return f.fh, verf

    fh, verf = run(first())
    assert path.read_bytes()[:12] == b"abcd" * 3
    state_server.restart()

    async def second() -> None:
        c, _root = await mounted_client(state_server)
        w = await c.write(fh, 0, b"ABCD", ANON_STATEID, stable=UNSTABLE4)
        # The client sees a new verifier: its uncommitted writes must be sent again.
        assert w.verifier != verf and await c.commit(fh) == w.verifier

    run(second())


def test_file_sync_data_survives_kill_9(tmp_path: Path) -> None:
    srv = ProcessServer(tmp_path)
    srv.start()
    try:
        async def main() -> None:
            c = await Nfs4Client.connect("127.0.0.1", srv.port, AuthSys(0, 0))
            root = await c.mount("/share")
            f = await c.open(root, "durable", create=True)
            w = await c.write(f.fh, 0, b"committed bytes", f.stateid, stable=FILE_SYNC4)
            assert w.committed == FILE_SYNC4
            await c.close()

        run(main())
        srv.kill()
        assert (srv.share / "durable").read_bytes() == b"committed bytes"
    finally:
        srv.kill()


def test_hostile_offsets_counts_and_stateids(state_server: NfsServer) -> None:
    (state_server.paths["/a"] / "f").write_bytes(b"0123456789")

    async def main() -> None:
        c, root = await mounted_client(state_server)
        f = await c.open(root, "f")
        r = await c.read(f.fh, BIG, 10, f.stateid)
        assert r.data == b"" and r.eof
        r = await c.read(f.fh, (1 << 63) - 1, 10, f.stateid)
        assert r.data == b"" and r.eof
        r = await c.read(f.fh, 0, 0xFFFFFFFF, f.stateid)  # over maxread: capped, not refused
        assert r.data == b"0123456789" and r.eof
        assert await status_of(c.write(f.fh, BIG - 2, b"xyz", f.stateid)) == Stat.FBIG
        assert await status_of(c.write(f.fh, (1 << 63) - 2, b"xyz", f.stateid)) == Stat.FBIG
        assert await status_of(c.read(f.fh, 0, 1, b"\x01" * 16)) in (Stat.BAD_STATEID, Stat.STALE_STATEID)
        assert await status_of(c.read(f.fh, 0, 1, b"\x00" * 4 + b"\xff" * 12)) == Stat.BAD_STATEID
        assert await status_of(c.read(root, 0, 1, ANON_STATEID)) == Stat.ISDIR
        # Unsupported / read-only attributes in SETATTR; the reply still carries attrsset.
        from securenfs.nfs4.xdr4 import Fattr

        rep = await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)),
                               (Op.SETATTR, SetattrArgs(ANON_STATEID, Fattr([0, 1 << (Attr.QUOTA_USED - 32)], b"\0" * 8)))])
        assert rep.status == Stat.ATTRNOTSUPP and rep.results[-1][1].attrsset == []  # type: ignore[attr-defined]
        assert await status_of(c.setattr(f.fh, {Attr.NUMLINKS: 3})) == Stat.INVAL
        assert await status_of(c.setattr(f.fh, {Attr.OWNER: "no-such-user@nowhere"})) == Stat.BADOWNER
        # The server still serves.
        assert (await c.read(f.fh, 0, 4, f.stateid)).data == b"0123"

    run(main())


def test_setattr_size_mode_owner_times(state_server: NfsServer) -> None:
    p = state_server.paths["/a"] / "s"
    p.write_bytes(b"x" * 100)

    async def main() -> None:
        c, root = await mounted_client(state_server)
        f = await c.open(root, "s", access=3)
        assert await c.setattr(f.fh, {Attr.SIZE: 10}, f.stateid) == [Attr.SIZE]
        assert p.stat().st_size == 10
        ro = await c.open(root, "s", access=1, owner=b"reader")
        assert await status_of(c.setattr(f.fh, {Attr.SIZE: 0}, ro.stateid)) == Stat.OPENMODE
        got = await c.setattr(f.fh, {Attr.MODE: 0o600, Attr.OWNER: "1234", Attr.OWNER_GROUP: "4321",
                                     Attr.TIME_MODIFY_SET: (1_000_000, 5), Attr.TIME_ACCESS_SET: None})
        assert sorted(got) == sorted([Attr.MODE, Attr.OWNER, Attr.OWNER_GROUP, Attr.TIME_ACCESS_SET,
                                      Attr.TIME_MODIFY_SET])
        st = p.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (1234, 4321)
        assert st.st_mtime_ns == 1_000_000 * 10**9 + 5 and abs(st.st_atime - st.st_ctime) < 5
        # "Guarded by ctime": VERIFY(time_metadata) + SETATTR applies only if unchanged.
        a = await c.getattr(f.fh, [Attr.TIME_METADATA])
        from securenfs.client.nfs4 import fattr_of
        from securenfs.nfs4 import fattr

        guard = fattr.encode(fattr.ObjInfo(os.stat(p), f.fh, None, 0), [Attr.TIME_METADATA])  # type: ignore[arg-type]
        assert fattr.decode(guard)[Attr.TIME_METADATA] == a[Attr.TIME_METADATA]
        rep = await c.seq([(Op.PUTFH, FhArgs(f.fh)), (Op.VERIFY, FattrArgs(guard)),
                           (Op.SETATTR, SetattrArgs(ANON_STATEID, fattr_of({Attr.MODE: 0o640})))])
        assert rep.status == 0 and stat.S_IMODE(p.stat().st_mode) == 0o640
        rep = await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)), (Op.VERIFY, FattrArgs(guard)),
                               (Op.SETATTR, SetattrArgs(ANON_STATEID, fattr_of({Attr.MODE: 0o600})))])
        assert rep.status == Stat.NOT_SAME and stat.S_IMODE(p.stat().st_mode) == 0o640
        # A non-root caller cannot give files away (the kernel decides, as the caller).
        u = await Nfs4Client.connect("127.0.0.1", state_server.port, AuthSys(1234, 4321))
        await u.mount("/a")
        assert await status_of(u.setattr(f.fh, {Attr.OWNER: "0"})) == Stat.PERM

    run(main())


def test_namespace_changes_and_change_info(state_server: NfsServer) -> None:
    base = state_server.paths["/a"]

    async def change(c: Nfs4Client, fh: bytes) -> int:
        return int((await c.getattr(fh, [Attr.CHANGE]))[Attr.CHANGE])

    async def main() -> None:
        c, root = await mounted_client(state_server)
        before = await change(c, root)
        d1, cr = await c.create(root, "d1", FType.DIR, attrs={Attr.MODE: 0o750})
        assert cr.cinfo.before == before and cr.cinfo.after == await change(c, root)
        assert stat.S_IMODE((base / "d1").stat().st_mode) == 0o750
        d2, _ = await c.create(root, "d2", FType.DIR)
        _l, _ = await c.create(d1, "ln", FType.LNK, link=b"../target")
        assert os.readlink(base / "d1" / "ln") == "../target"
        assert await status_of(c.create(d1, "dev", FType.CHR)) == Stat.PERM  # allow_devices = false
        assert await status_of(c.create(d1, "fifo", FType.FIFO)) == Stat.PERM
        assert await status_of(c.create(d1, "reg", FType.REG)) == Stat.BADTYPE
        assert await status_of(c.create(d1, "d2", FType.DIR)) == 0
        assert await status_of(c.create(d1, "d2", FType.DIR)) == Stat.EXIST
        f = await c.open(d1, "file", create=True)
        await c.write(f.fh, 0, b"payload", f.stateid)
        await c.close_file(f)
        (base / "d2" / "old").write_bytes(b"to be replaced")
        # RENAME across directories over an existing target; change_info of both directories.
        s_before, t_before = await change(c, d1), await change(c, d2)
        rr = await c.rename(d1, "file", d2, "old")
        assert (rr.source.before, rr.target.before) == (s_before, t_before)
        assert (rr.source.after, rr.target.after) == (await change(c, d1), await change(c, d2))
        assert (base / "d2" / "old").read_bytes() == b"payload" and not (base / "d1" / "file").exists()
        # LINK, then REMOVE of one name keeps the other.
        moved = await c.lookup_path("/a/d2/old")
        lk = await c.link(moved, d1, "hard")
        assert lk.cinfo.after == await change(c, d1)
        assert (base / "d2" / "old").stat().st_nlink == 2
        rm = await c.remove(d2, "old")
        assert rm.cinfo.after == await change(c, d2)
        assert (base / "d1" / "hard").read_bytes() == b"payload"
        assert await status_of(c.remove(d2, "old")) == Stat.NOENT
        assert await status_of(c.remove(root, "d1")) == Stat.NOTEMPTY
        assert await status_of(c.link(d1, d2, "dirlink")) == Stat.ISDIR
        await c.remove(d1, "d2")
        assert not (base / "d1" / "d2").exists()
        # Changes to the pseudo file system are refused.
        pseudo = await c.lookup_path("/")
        assert await status_of(c.create(pseudo, "x", FType.DIR)) == Stat.ROFS

    run(main())


def test_getattr_right_after_lookup(state_server: NfsServer) -> None:
    """LOOKUP + GETATTR (every path walk) answers from the stat LOOKUP just took; with any
    operation between the two, or in a later COMPOUND, the object is stat'ed again."""
    from securenfs.client.nfs4 import fattr_of
    from securenfs.nfs4 import fattr
    from securenfs.nfs4.xdr4 import BitmapArgs, GetattrRes, NameArgs

    p = state_server.paths["/a"] / "walked"
    want = [Attr.TYPE, Attr.SIZE, Attr.FILEID, Attr.MODE, Attr.NUMLINKS, Attr.TIME_MODIFY]
    mask = fattr.set_to_bitmap(want)

    async def walk(c: Nfs4Client, root: bytes, *between: Any) -> dict[int, Any]:
        rep = await c.seq([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"walked")), *between,
                           (Op.GETATTR, BitmapArgs(mask))])
        res = rep.results[-1][1]
        assert isinstance(res, GetattrRes)
        return fattr.decode(res.attrs)

    def expected() -> dict[int, Any]:
        st = os.stat(p)
        return {Attr.TYPE: FType.REG, Attr.SIZE: st.st_size, Attr.FILEID: st.st_ino,
                Attr.MODE: stat.S_IMODE(st.st_mode), Attr.NUMLINKS: st.st_nlink,
                Attr.TIME_MODIFY: (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9)}

    async def main() -> None:
        c, root = await mounted_client(state_server)
        f = await c.open(root, "walked", create=True)
        await c.write(f.fh, 0, b"x" * 100, f.stateid, stable=FILE_SYNC4)
        await c.close_file(f)
        got = await walk(c, root)
        assert got == expected() and got[Attr.SIZE] == 100
        # Changed outside between two walks: the next walk sees the change.
        os.chmod(p, 0o604)
        os.truncate(p, 7)
        os.link(p, p.with_name("walked-link"))
        got = await walk(c, root)
        assert got == expected() and (got[Attr.SIZE], got[Attr.MODE], got[Attr.NUMLINKS]) == (7, 0o604, 2)
        # Changed by an operation between LOOKUP and GETATTR: GETATTR sees the change.
        got = await walk(c, root, (Op.SETATTR, SetattrArgs(ANON_STATEID, fattr_of({Attr.MODE: 0o640}))))
        assert got == expected() and got[Attr.MODE] == 0o640

    run(main())
