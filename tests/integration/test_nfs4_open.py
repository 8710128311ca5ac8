"""OPEN/CLOSE/OPEN_DOWNGRADE, share reservations and stateids with two or more clients of the
project's client against the real server on loopback (RFC 8881 §8.2, §9.7, §18.16)."""

from __future__ import annotations

import asyncio
import os

import pytest

from securenfs.client.nfs4 import ANON_STATEID, BYPASS_STATEID, Nfs4Error, stateid_seqid
from securenfs.locking.stateids import Stateid
from securenfs.nfs4.xdr4 import (
    CLAIM_PREVIOUS,
    EXCLUSIVE4_1,
    GUARDED4,
    CloseArgs,
    FhArgs,
    OpenArgs,
    ReadArgs,
    StateOwner,
    VoidArgs,
    WriteArgs,
)
from securenfs.proto.constants import Attr, Op, Stat
from tests.support.nfsserver import NfsServer, mounted_client, run, status_of

READ, WRITE, BOTH = 1, 2, 3
DENY_NONE, DENY_READ, DENY_WRITE = 0, 1, 2
CURRENT = Stateid(1, bytes(12)).pack()


def test_create_modes_and_exclusive_retry(state_server: NfsServer) -> None:
    path = state_server.paths["/a"]

    async def main() -> None:
        c, root = await mounted_client(state_server)
        f = await c.open(root, "new", create=True, attrs={Attr.MODE: 0o640})
        assert f.attrset == [Attr.MODE]
        assert (path / "new").stat().st_mode & 0o777 == 0o640
        await c.write(f.fh, 0, b"0123456789", f.stateid)
        await c.close_file(f)
        # UNCHECKED4 on an existing file with size 0 truncates it; GUARDED4 refuses.
        f2 = await c.open(root, "new", create=True, attrs={Attr.SIZE: 0})
        assert (path / "new").stat().st_size == 0
        await c.close_file(f2)
        assert await status_of(c.open(root, "new", create=True, mode=GUARDED4)) == Stat.EXIST
        # EXCLUSIVE4_1: a retry with the same verifier succeeds (same file), another verifier fails.
        verf = os.urandom(8)
        e1 = await c.open(root, "excl", create=True, mode=EXCLUSIVE4_1, verifier=verf, attrs={Attr.MODE: 0o600})
        await c.close_file(e1)
        e2 = await c.open(root, "excl", create=True, mode=EXCLUSIVE4_1, verifier=verf, attrs={Attr.MODE: 0o600})
        assert e2.fh == e1.fh
        await c.close_file(e2)
        assert await status_of(c.open(root, "excl", create=True, mode=EXCLUSIVE4_1, verifier=os.urandom(8))) == Stat.EXIST
        assert (path / "excl").stat().st_mode & 0o777 == 0o600
        # Opening what is not a regular file.
        await c.create(root, "dir")
        assert await status_of(c.open(root, "dir")) == Stat.ISDIR
        assert await status_of(c.open(root, "missing")) == Stat.NOENT
        # CLAIM_PREVIOUS belongs to the grace period, which is not running.
        a = OpenArgs(0, READ, 0, StateOwner(c.clientid, b"o"), claim=CLAIM_PREVIOUS)
        r = await c.seq_raw([(Op.PUTFH, FhArgs(f.fh)), (Op.OPEN, a)])
        assert r.status == Stat.NO_GRACE

    run(main())


def test_deny_write_share_reservation_between_clients(state_server: NfsServer) -> None:
    (state_server.paths["/a"] / "doc").write_bytes(b"original")

    async def main() -> None:
        a, root = await mounted_client(state_server)
        b, _ = await mounted_client(state_server)
        fa = await a.open(root, "doc", access=READ, deny=DENY_WRITE)
        # B may read alongside, but not open for writing, nor write without an open.
        assert await status_of(b.open(root, "doc", access=WRITE)) == Stat.SHARE_DENIED
        assert await status_of(b.open(root, "doc", access=BOTH)) == Stat.SHARE_DENIED
        fb = await b.open(root, "doc", access=READ)
        assert (await b.read(fb.fh, 0, 100, fb.stateid)).data == b"original"
        assert await status_of(b.write(fa.fh, 0, b"evil", ANON_STATEID)) == Stat.LOCKED
        assert await status_of(b.write(fa.fh, 0, b"evil", BYPASS_STATEID)) == Stat.LOCKED
        # B cannot deny reading to A's open; an open by B denying writes is fine (no writers).
        assert await status_of(b.open(root, "doc", access=READ, deny=DENY_READ, owner=b"o2")) == Stat.SHARE_DENIED
        await b.close_file(fb)
        await a.close_file(fa)
        fb = await b.open(root, "doc", access=WRITE)
        await b.write(fb.fh, 0, b"changed!", fb.stateid)
        await b.close_file(fb)
        assert (state_server.paths["/a"] / "doc").read_bytes() == b"changed!"

    run(main())


def test_upgrade_downgrade_and_open_seqids(state_server: NfsServer) -> None:
    (state_server.paths["/a"] / "f").write_bytes(b"x")

    async def main() -> None:
        c, root = await mounted_client(state_server)
        o = await c.open(root, "f", access=READ)
        assert stateid_seqid(o.stateid) == 1
        o2 = await c.open(root, "f", access=WRITE, deny=DENY_WRITE)  # same owner: upgrade
        assert o2.stateid[4:] == o.stateid[4:] and stateid_seqid(o2.stateid) == 2
        # The old seqid is now OLD_STATEID, a future one BAD_STATEID, 0 means "current".
        assert await status_of(c.read(o.fh, 0, 1, o.stateid)) == Stat.OLD_STATEID
        future = (5).to_bytes(4, "big") + o.stateid[4:]
        assert await status_of(c.read(o.fh, 0, 1, future)) == Stat.BAD_STATEID
        zero = bytes(4) + o.stateid[4:]
        assert (await c.read(o.fh, 0, 1, zero)).data == b"x"
        # READ+WRITE / DENY_WRITE can go down to READ / DENY_NONE (that OPEN happened)...
        o2.stateid = await c.open_downgrade(o2, READ, DENY_NONE)
        assert stateid_seqid(o2.stateid) == 3
        assert await status_of(c.write(o.fh, 0, b"y", o2.stateid)) == Stat.OPENMODE
        # ...but not to something that is not a union of its OPENs, nor up.
        assert await status_of(c.open_downgrade(o2, BOTH)) == Stat.INVAL
        # Wrap-around: a seqid at 0xffffffff goes to 1, never 0.
        svc = state_server.server.nfs.service  # type: ignore[union-attr]
        st = svc.state.table.get(o2.stateid[4:])
        st.seqid = 0xFFFFFFFF
        o3 = await c.open(root, "f", access=READ)
        assert stateid_seqid(o3.stateid) == 1
        high = (0xFFFFFFFF).to_bytes(4, "big") + o3.stateid[4:]
        assert await status_of(c.read(o.fh, 0, 1, high)) == Stat.OLD_STATEID
        assert (await c.read(o.fh, 0, 1, o3.stateid)).data == b"x"
        closed = await c.close_file(o3)
        assert closed == Stateid(0xFFFFFFFF, bytes(12)).pack()
        assert await status_of(c.read(o.fh, 0, 1, o3.stateid)) == Stat.BAD_STATEID

    run(main())


def test_stateids_belong_to_their_client(state_server: NfsServer) -> None:
    (state_server.paths["/a"] / "f").write_bytes(b"secret")

    async def main() -> None:
        a, root = await mounted_client(state_server)
        b, _ = await mounted_client(state_server)
        fa = await a.open(root, "f", access=BOTH)
        # B presents A's stateid: answered exactly like an unknown one.
        assert await status_of(b.read(fa.fh, 0, 10, fa.stateid)) == Stat.BAD_STATEID
        assert await status_of(b.write(fa.fh, 0, b"x", fa.stateid)) == Stat.BAD_STATEID
        assert await status_of(b.close_file(fa)) == Stat.BAD_STATEID
        assert await b.test_stateids([fa.stateid]) == [Stat.BAD_STATEID]
        assert await a.test_stateids([fa.stateid, ANON_STATEID, fa.stateid[:8] + os.urandom(8), os.urandom(16)]) == [
            0, Stat.BAD_STATEID, Stat.BAD_STATEID, Stat.STALE_STATEID]
        # A stateid with another boot epoch is stale; A's still works.
        stale = fa.stateid[:4] + (0xDEAD).to_bytes(4, "big") + fa.stateid[8:]
        assert await status_of(a.read(fa.fh, 0, 10, stale)) == Stat.STALE_STATEID
        assert (await a.read(fa.fh, 0, 10, fa.stateid)).data == b"secret"
        # The read-bypass stateid (all ones) reads without an open.
        assert (await b.read(fa.fh, 0, 10, b"\xff" * 16)).data == b"secret"
        # An open stateid cannot be freed while open.
        assert await status_of(a.free_stateid(fa.stateid)) == Stat.LOCKS_HELD
        # A stateid for another file than the current file handle.
        other = await a.open(root, "g", create=True)
        assert await status_of(a.read(other.fh, 0, 1, fa.stateid)) == Stat.BAD_STATEID

    run(main())


def test_current_stateid_in_one_compound(state_server: NfsServer) -> None:
    async def main() -> None:
        c, root = await mounted_client(state_server)
        from securenfs.nfs4.xdr4 import OPEN4_CREATE, Fattr

        a = OpenArgs(0, BOTH, 0, StateOwner(c.clientid, b"cur"), OPEN4_CREATE, 0, Fattr(), name=b"cur")
        rep = await c.seq([(Op.PUTFH, FhArgs(root)), (Op.OPEN, a),
                           (Op.WRITE, WriteArgs(CURRENT, 0, 2, b"via current")),
                           (Op.READ, ReadArgs(CURRENT, 0, 100)),
                           (Op.CLOSE, CloseArgs(0, CURRENT)), (Op.GETFH, VoidArgs())])
        assert rep.results[4][1].data == b"via current"  # type: ignore[attr-defined]
        # No current stateid in a fresh COMPOUND.
        fh = rep.results[-1][1].fh  # type: ignore[attr-defined]
        assert await status_of(c.read(fh, 0, 1, CURRENT)) == Stat.BAD_STATEID
        assert (state_server.paths["/a"] / "cur").read_bytes() == b"via current"

    run(main())


@pytest.mark.parametrize("rounds", [15])
def test_concurrent_opens_from_two_clients(state_server: NfsServer, rounds: int) -> None:
    (state_server.paths["/a"] / "race").write_bytes(b"")

    async def main() -> None:
        a, root = await mounted_client(state_server)
        b, _ = await mounted_client(state_server)
        svc = state_server.server.nfs.service  # type: ignore[union-attr]
        for i in range(rounds):
            # Both ask to write and deny writing: exactly one may win.
            res = await asyncio.gather(a.open(root, "race", access=BOTH, deny=DENY_WRITE),
                                       b.open(root, "race", access=BOTH, deny=DENY_WRITE),
                                       return_exceptions=True)
            won = [r for r in res if not isinstance(r, Exception)]
            lost = [r for r in res if isinstance(r, Exception)]
            assert len(won) == 1 and len(lost) == 1, res
            assert isinstance(lost[0], Nfs4Error) and lost[0].status == Stat.SHARE_DENIED
            winner = a if res[0] is won[0] else b
            await winner.close_file(won[0])
            # Sharing opens: everyone wins, many at once, all close cleanly.
            opens = await asyncio.gather(*[cl.open(root, "race", access=READ, owner=b"o%d" % k)
                                           for k in range(4) for cl in (a, b)])
            await asyncio.gather(*[(a if k % 2 == 0 else b).close_file(o) for k, o in enumerate(opens)])
            assert not svc.state.files, f"round {i}: state left behind"

    run(main())


def test_many_files_with_a_small_descriptor_cache(state_server: NfsServer) -> None:
    async def main() -> None:
        svc = state_server.server.nfs.service  # type: ignore[union-attr]
        svc.state.fds.limit = 8
        c, root = await mounted_client(state_server)
        files = []
        for i in range(200):
            f = await c.open(root, f"many{i}", create=True)
            await c.write(f.fh, 0, b"file %d" % i, f.stateid)
            files.append(f)
        assert len(svc.state.fds) <= 8
        for i, f in enumerate(files):
            assert (await c.read(f.fh, 0, 100, f.stateid)).data == b"file %d" % i
            await c.close_file(f)
        assert len(svc.state.fds) <= 8 and not svc.state.files

    run(main())
