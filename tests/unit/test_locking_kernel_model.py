"""The state manager with kernel locks on, driven by random LOCK, LOCKU and FREE_STATEID of
three owners (two clients) on one real file: after every step the kernel's lock table
(/proc/locks) holds exactly the NFS lock table, cut to the kernel's byte space, and a
descriptor per owner holding a lock stateid (model test, the h11 way: the NFS table is the
model, the kernel the implementation)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from securenfs.locking import LockDenied, LockType, Stateid
from securenfs.locking.ofd import KERNEL_END
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.state.opens import LockState, NeedLockFd, StateManager
from tests.support.hostlock import proc_locks

FH = b"fh-model"
ALL = (1 << 64) - 1
OWNERS = [(0x100, b"a"), (0x100, b"b"), (0x200, b"c")]


def expected(m: StateManager) -> list[tuple[str, str, int, int | None]]:
    f = m.files.get(FH)
    out = []
    for rs in (f.locks.owners.values() if f is not None else ()):
        for a, b, t in rs:
            if a < KERNEL_END:
                out.append(("OFDLCK", "WRITE" if t == LockType.WRITE_LT else "READ", a,
                            None if b >= KERNEL_END else b - 1))
    return sorted(out, key=lambda r: (r[2], r[0], r[1], -1 if r[3] is None else r[3]))


@pytest.mark.parametrize("seed", range(6))
def test_kernel_table_equals_nfs_table_after_every_step(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"\0" * 100)
    rng = random.Random(seed)
    m = StateManager(7, kernel_locks=True)
    opens = {cid: Stateid(1, m.open(cid, b"oo", FH, 3, 0)[0].other) for cid in {c for c, _ in OWNERS}}
    sids: dict[tuple[int, bytes], LockState] = {}

    def lock(cid: int, owner: bytes, lt: LockType, off: int, ln: int) -> None:
        kfd: int | None = None
        while True:
            try:
                ls = sids.get((cid, owner))
                if ls is None:
                    sids[(cid, owner)] = m.lock(cid, FH, lt, off, ln, open_sid=opens[cid], lock_owner=owner, kfd=kfd)
                else:
                    m.lock(cid, FH, lt, off, ln, lock_sid=Stateid(0, ls.other), kfd=kfd)
                return
            except NeedLockFd as need:
                assert kfd is None
                kfd = os.open(path, os.O_RDWR if need.writable else os.O_RDONLY)

    offsets = [0, 5, 10, 20, 40, KERNEL_END - 2, KERNEL_END + 3]
    lengths = [1, 5, 10, 30, ALL]
    denied = 0
    for _step in range(150):
        cid, owner = rng.choice(OWNERS)
        off, ln = rng.choice(offsets), rng.choice(lengths)
        if off + ln > (1 << 64) and ln != ALL:
            ln = ALL
        what = rng.random()
        try:
            if what < 0.55:
                lock(cid, owner, rng.choice([LockType.READ_LT, LockType.WRITE_LT]), off, ln)
            elif (cid, owner) in sids and what < 0.9:
                m.locku(cid, Stateid(0, sids[(cid, owner)].other), FH, 1, off, ln)
            elif (cid, owner) in sids:
                m.free_stateid(cid, Stateid(0, sids[(cid, owner)].other))
                del sids[(cid, owner)]
        except LockDenied as exc:
            # Only the NFS table refuses: NFS owners never conflict in the kernel beyond it.
            assert exc.conflict.clientid != 0
            denied += 1
        except Nfs4Error as exc:
            assert exc.status == Stat.LOCKS_HELD  # FREE_STATEID while locks remain
        assert proc_locks(path) == expected(m)
        assert m.lock_fds == len(sids) == m.fds.held
        f = m.files.get(FH)
        for cid in opens:
            held = sum(len(rs) for (c, _o), rs in (f.locks.owners.items() if f is not None else ()) if c == cid)
            assert m.clients[cid].nranges == held
    assert denied > 0
    m.close_all()
    assert proc_locks(path) == [] and m.lock_fds == 0
