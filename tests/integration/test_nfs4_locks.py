"""LOCK, LOCKT, LOCKU with two clients: split and merge, upgrade and downgrade, NFS4ERR_DENIED
with the conflicting owner and range, lock stateid seqids, bad ranges (RFC 8881 §9, §18.10-12)."""

from __future__ import annotations

from typing import Any

from securenfs.client.nfs4 import Nfs4Error, stateid_seqid
from securenfs.nfs4.xdr4 import WRITE_LT, FhArgs, LockArgs, LockRes, StateOwner
from securenfs.proto.constants import Op, Stat
from securenfs.xdr import Packer
from tests.support.nfsserver import NfsServer, RawArgs, mounted_client, run

ALL = (1 << 64) - 1


async def denied(coro: Any) -> Nfs4Error:
    try:
        await coro
    except Nfs4Error as exc:
        return exc
    raise AssertionError("expected an error")


def ranges(srv: NfsServer, fh: bytes) -> list[tuple[bytes, int, int, bool]]:
    svc = srv.server.nfs.service  # type: ignore[union-attr]
    f = svc.state.files.get(fh)
    if f is None:
        return []
    return sorted((owner, a, b, int(t) == WRITE_LT) for (_cid, owner), rs in f.locks.owners.items()
                  for a, b, t in rs)


def test_split_merge_upgrade_downgrade_and_denied(state_server: NfsServer) -> None:
    (state_server.paths["/a"] / "db").write_bytes(b"\0" * 4096)

    async def main() -> None:
        a, root = await mounted_client(state_server)
        b, _ = await mounted_client(state_server)
        fa = await a.open(root, "db")
        fb = await b.open(root, "db")
        la = await a.lock(fa, 0, 100, lock_owner=b"pidA")
        assert stateid_seqid(la) == 1
        # B's write lock on an overlapping range is denied with A's owner and range.
        exc = await denied(b.lock(fb, 50, 10, lock_owner=b"pidB"))
        assert exc.status == Stat.DENIED
        d = exc.reply.results[-1][1].denied  # type: ignore[union-attr]
        assert (d.offset, d.length, d.locktype) == (0, 100, WRITE_LT)
        assert d.owner == StateOwner(a.clientid, b"pidA")
        t = await b.lockt(fb.fh, 99, 1)
        assert t.status == Stat.DENIED and t.denied is not None and t.denied.owner.owner == b"pidA"
        assert (await b.lockt(fb.fh, 100, 50)).status == 0
        # Split: unlocking the middle leaves two ranges.
        la = await a.locku(fa.fh, la, 40, 20)
        assert stateid_seqid(la) == 2
        assert ranges(state_server, fa.fh) == [(b"pidA", 0, 40, True), (b"pidA", 60, 100, True)]
        lb = await b.lock(fb, 45, 10, lock_owner=b"pidB")  # fits in the hole
        # Downgrade a sub-range to a read lock; B may share-read it; upgrade it back.
        la = await a.lock(fa, 0, 20, write=False, lock_stateid=la)
        assert ranges(state_server, fa.fh)[:2] == [(b"pidA", 0, 20, False), (b"pidA", 20, 40, True)]
        lb = await b.lock(fb, 5, 5, write=False, lock_stateid=lb)
        assert (await denied(a.lock(fa, 0, 20, lock_stateid=la))).status == Stat.DENIED  # B reads 5..10
        lb = await b.locku(fb.fh, lb, 5, 5)
        la = await a.lock(fa, 0, 20, lock_stateid=la)
        # Merge: adjacent write ranges of one owner become one.
        la = await a.lock(fa, 20, 20, lock_stateid=la)
        mine = [r for r in ranges(state_server, fa.fh) if r[0] == b"pidA"]
        assert mine == [(b"pidA", 0, 40, True), (b"pidA", 60, 100, True)]
        lb = await b.locku(fb.fh, lb, 0, ALL)
        la = await a.lock(fa, 40, 20, lock_stateid=la)
        assert [r for r in ranges(state_server, fa.fh) if r[0] == b"pidA"] == [(b"pidA", 0, 100, True)]
        # CLOSE with locks held is refused; after LOCKU of everything it works.
        assert (await denied(a.close_file(fa))).status == Stat.LOCKS_HELD
        old = la
        la = await a.locku(fa.fh, la, 0, ALL)
        assert (await denied(a.locku(fa.fh, old, 0, 1))).status == Stat.OLD_STATEID
        await a.close_file(fa)
        await b.close_file(fb)
        assert ranges(state_server, fa.fh) == []

    run(main())


def test_lock_owners_are_separate_and_many_locks(state_server: NfsServer) -> None:
    async def main() -> None:
        a, root = await mounted_client(state_server)
        files = [await a.open(root, f"f{i}", create=True) for i in range(20)]
        # One lock-owner, many files, many ranges each; a second owner of the same client conflicts.
        sids = {}
        for f in files:
            sid = await a.lock(f, 0, 1, lock_owner=b"proc1")
            for k in range(1, 25):
                sid = await a.lock(f, k * 10, 5, lock_stateid=sid)
            sids[f.fh] = sid
            assert stateid_seqid(sid) == 25
            assert len(ranges(state_server, f.fh)) == 25
            e = await denied(a.lock(f, 12, 1, lock_owner=b"proc2"))
            assert e.status == Stat.DENIED
        # Lock stateids differ from open stateids and are per (lock-owner, file).
        assert all(sids[f.fh][4:] != f.stateid[4:] for f in files)
        assert len({s[4:] for s in sids.values()}) == len(files)
        # Wrap-around of a lock stateid's seqid.
        svc = state_server.server.nfs.service  # type: ignore[union-attr]
        f0 = files[0]
        svc.state.table.get(sids[f0.fh][4:]).seqid = 0xFFFFFFFF
        s = await a.locku(f0.fh, (0xFFFFFFFF).to_bytes(4, "big") + sids[f0.fh][4:], 0, 1)
        assert stateid_seqid(s) == 1
        # A lock stateid without locks can be freed; with locks it cannot.
        assert (await denied(a.free_stateid(sids[files[1].fh]))).status == Stat.LOCKS_HELD
        s = await a.locku(f0.fh, s, 0, ALL)
        await a.free_stateid(s)
        assert await a.test_stateids([s]) == [Stat.BAD_STATEID]

    run(main())


def test_bad_lock_ranges_and_reclaim(state_server: NfsServer) -> None:
    async def main() -> None:
        a, root = await mounted_client(state_server)
        f = await a.open(root, "r", create=True, access=1)
        assert (await denied(a.lock(f, 0, 0, write=False, lock_owner=b"o"))).status == Stat.INVAL
        assert (await denied(a.lock(f, ALL - 5, 10, write=False, lock_owner=b"o"))).status == Stat.INVAL
        # A write lock needs an open for writing.
        assert (await denied(a.lock(f, 0, 10, lock_owner=b"o"))).status == Stat.OPENMODE
        # Whole-file read lock from the largest offset works (length all ones).
        s = await a.lock(f, ALL - 5, ALL, write=False, lock_owner=b"o")
        assert (await a.lockt(f.fh, 0, 1)).status == 0
        assert (await denied(a.locku(f.fh, s, 5, 0))).status == Stat.INVAL
        # Reclaims are answered NO_GRACE (no grace period is running).
        r = await a.seq_raw([(Op.PUTFH, FhArgs(f.fh)),
                             (Op.LOCK, LockArgs(1, True, 0, 1, True, 0, f.stateid, 0, StateOwner(a.clientid, b"x")))])
        assert r.status == Stat.NO_GRACE
        # Blocking lock types are accepted (no callback yet: the client polls).
        b, _ = await mounted_client(state_server)
        fb = await b.open(root, "r", access=3)
        wl = await b.lock(fb, 0, 10, lock_owner=b"w", wait=True)
        rep = await a.seq_raw([(Op.PUTFH, FhArgs(f.fh)),
                               (Op.LOCK, LockArgs(3, False, 0, 10, True, 0, f.stateid, 0,
                                                  StateOwner(a.clientid, b"r2")))])
        assert isinstance(rep.results[-1][1], LockRes) and rep.status == Stat.DENIED
        await b.locku(fb.fh, wl, 0, 10)
        # RELEASE_LOCKOWNER is NFSv4.0 only: a 4.1 server answers NFS4ERR_NOTSUPP
        # (RFC 8881 §15.2: operations that MUST NOT be implemented for 4.1).
        rl = Packer()
        rl.u64(a.clientid)
        rl.opaque(b"o")
        rep = await a.seq_raw([(Op.RELEASE_LOCKOWNER, RawArgs(rl.getvalue()))])
        assert rep.status == Stat.NOTSUPP
        # The server still serves.
        assert (await a.lockt(f.fh, 0, 10)).status == 0

    run(main())
