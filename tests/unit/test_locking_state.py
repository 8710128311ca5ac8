"""LOCK/LOCKT/LOCKU through LockingState, courteous lease expiry, and interleaved clients."""

from __future__ import annotations

import asyncio
import random

import pytest

from securenfs.locking import (
    NFS4_UINT64_MAX,
    ExistLockOwner,
    LockDenied,
    LockingState,
    LockState,
    LockType,
    OpenState,
    OpenToLockOwner,
    Revoked,
    ShareAccess,
    ShareDeny,
    Stateid,
    next_seqid,
)
from securenfs.nfs4.constants import SeqStatus, Stat
from securenfs.nfs4.errors import Nfs4Error

C1, C2, C3 = 0x100, 0x200, 0x300
F = b"fh-lockfile"
RW, DN = ShareAccess.BOTH, ShareDeny.NONE
WL, RL = LockType.WRITE_LT, LockType.READ_LT


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _err(fn: object, *args: object) -> int:
    try:
        fn(*args)  # type: ignore[operator]
    except Nfs4Error as exc:
        return exc.status
    return Stat.OK


def _opened(ls: LockingState, cid: int, f: bytes = F, access: int = RW, deny: int = DN) -> Stateid:
    return ls.open(cid, b"oo-%x" % cid, f, access, deny).stateid


def test_denied_carries_the_conflicting_owner_range_and_type() -> None:
    ls = LockingState(3)
    o1, o2 = _opened(ls, C1), _opened(ls, C2)
    ls.lock(C1, F, WL, 100, 50, OpenToLockOwner(o1, b"pid-1"))
    with pytest.raises(LockDenied) as ei:
        ls.lock(C2, F, RL, 120, 1, OpenToLockOwner(o2, b"pid-2"))
    c = ei.value.conflict
    assert ei.value.status == Stat.DENIED
    assert (c.offset, c.length, c.locktype, c.clientid, c.owner) == (100, 50, WL, C1, b"pid-1")
    # A denied first LOCK creates no lock stateid and no lock-owner.
    assert ls.client_has_state(C2)
    assert ls.locks_of(F, C2, b"pid-2") == []
    assert all(not isinstance(s, LockState) or s.clientid != C2 for s in ls.stateids._by_other.values())


def test_blocking_types_are_answered_like_plain_ones() -> None:
    ls = LockingState(3)
    o1, o2 = _opened(ls, C1), _opened(ls, C2)
    ls.lock(C1, F, LockType.WRITEW_LT, 0, 10, OpenToLockOwner(o1, b"a"))
    assert _err(ls.lock, C2, F, LockType.READW_LT, 5, 1, OpenToLockOwner(o2, b"b")) == Stat.DENIED
    assert ls.locks_of(F, C1, b"a") == [(0, 10, WL)]


def test_lockt_reports_without_changing_anything() -> None:
    ls = LockingState(3)
    o1 = _opened(ls, C1)
    lk = ls.lock(C1, F, WL, 0, NFS4_UINT64_MAX, OpenToLockOwner(o1, b"a"))
    with pytest.raises(LockDenied) as ei:
        ls.lockt(C2, F, RL, 1 << 40, 10, b"b")
    assert ei.value.conflict.length == NFS4_UINT64_MAX
    ls.lockt(C1, F, WL, 0, 10, b"a")  # the owner's own lock does not conflict
    ls.lockt(C2, b"unopened-file", WL, 0, 10, b"b")
    assert ls.test_stateids(C1, [lk]) == [Stat.OK]
    assert not ls.client_has_state(C2)
    assert b"unopened-file" not in ls.files


def test_lock_input_errors() -> None:
    ls = LockingState(3)
    o = _opened(ls, C1)
    new = OpenToLockOwner(o, b"a")
    assert _err(ls.lock, C1, F, WL, 0, 0, new) == Stat.INVAL
    assert _err(ls.lock, C1, F, WL, 10, NFS4_UINT64_MAX - 5, new) == Stat.INVAL
    assert _err(ls.lockt, C1, F, WL, 0, 0, b"a") == Stat.INVAL
    assert _err(ls.lock, C1, F, 7, 0, 1, new) == Stat.INVAL
    lk = ls.lock(C1, F, WL, 0, 1, new)
    assert _err(ls.locku, C1, lk, F, WL, 5, 0) == Stat.INVAL
    assert _err(ls.locku, C1, lk, F, WL, NFS4_UINT64_MAX, 2) == Stat.INVAL
    assert ls.locks_of(F, C1, b"a") == [(0, 1, WL)]


def test_write_lock_needs_write_open() -> None:
    ls = LockingState(3)
    o = _opened(ls, C1, access=ShareAccess.READ)
    assert _err(ls.lock, C1, F, WL, 0, 1, OpenToLockOwner(o, b"a")) == Stat.OPENMODE
    assert ls.lock(C1, F, RL, 0, 1, OpenToLockOwner(o, b"a")).seqid == 1


def test_lock_split_merge_upgrade_downgrade_through_stateids() -> None:
    ls = LockingState(3)
    o1, o2 = _opened(ls, C1), _opened(ls, C2)
    lk = ls.lock(C1, F, RL, 0, 100, OpenToLockOwner(o1, b"a"))
    lk = ls.lock(C1, F, WL, 40, 20, ExistLockOwner(lk))  # upgrade of a sub-range
    assert ls.locks_of(F, C1, b"a") == [(0, 40, RL), (40, 60, WL), (60, 100, RL)]
    lk2 = ls.lock(C2, F, RL, 0, 10, OpenToLockOwner(o2, b"b"))  # readers share
    assert _err(ls.lock, C2, F, RL, 45, 1, ExistLockOwner(lk2)) == Stat.DENIED
    lk = ls.locku(C1, lk, F, WL, 45, 10)  # split the write lock
    assert ls.locks_of(F, C1, b"a") == [(0, 40, RL), (40, 45, WL), (55, 60, WL), (60, 100, RL)]
    lk2 = ls.lock(C2, F, WL, 46, 5, ExistLockOwner(lk2))
    lk = ls.lock(C1, F, RL, 40, 5, ExistLockOwner(lk))  # downgrade
    lk = ls.lock(C1, F, RL, 55, 5, ExistLockOwner(lk))
    assert ls.locks_of(F, C1, b"a") == [(0, 45, RL), (55, 100, RL)]
    assert lk.seqid == 5  # one bump per LOCK and LOCKU


def test_open_to_lock_owner_twice_reuses_the_lock_stateid() -> None:
    ls = LockingState(3)
    o = _opened(ls, C1)
    a = ls.lock(C1, F, RL, 0, 1, OpenToLockOwner(o, b"a"))
    b = ls.lock(C1, F, RL, 5, 1, OpenToLockOwner(o, b"a"))
    assert a.other == b.other and b.seqid == 2


def test_lock_owner_and_open_owner_are_separate() -> None:
    # The same opaque bytes as an open-owner and as a lock-owner are two different owners.
    ls = LockingState(3)
    o = ls.open(C1, b"same", F, RW, DN).stateid
    lk = ls.lock(C1, F, WL, 0, 10, OpenToLockOwner(o, b"same"))
    assert lk.other != o.other
    lk = ls.locku(C1, lk, F, WL, 0, 10)
    ls.free_stateid(C1, lk)  # releasing the lock-owner ...
    assert ls.test_stateids(C1, [o]) == [Stat.OK]  # ... leaves the open alone
    assert ls.open(C1, b"same", F, RW, DN).stateid.seqid == 2


def test_release_lockowner_is_notsupp_in_4_1() -> None:
    ls = LockingState(3)
    assert _err(ls.release_lockowner, C1, b"a") == Stat.NOTSUPP
    o = _opened(ls, C1)
    lk = ls.lock(C1, F, WL, 0, 10, OpenToLockOwner(o, b"a"))
    assert _err(ls.release_lockowner, C1, b"a", 0) == Stat.LOCKS_HELD
    ls.locku(C1, lk, F, WL, 0, 10)
    ls.release_lockowner(C1, b"a", 0)
    assert ls.test_stateids(C1, [lk]) == [Stat.BAD_STATEID]


# -- courteous expiry ------------------------------------------------------------------------------
def _courteous() -> tuple[LockingState, Clock]:
    clock = Clock()
    return LockingState(3, lease_time=2, clock=clock), clock


def test_expired_client_keeps_state_until_a_conflict() -> None:
    ls, clock = _courteous()
    o1 = _opened(ls, C1)
    lk = ls.lock(C1, F, WL, 0, 10, OpenToLockOwner(o1, b"a"))
    clock.t += 10  # lease long gone, nobody else wants the file
    ls.renew(C1)
    assert ls.test_stateids(C1, [o1, lk]) == [Stat.OK, Stat.OK]
    assert ls.status_flags(C1) == 0
    assert ls.locks_of(F, C1, b"a") == [(0, 10, WL)]


def test_expired_client_without_conflict_is_untouched_by_others() -> None:
    ls, clock = _courteous()
    o1 = _opened(ls, C1)
    lk = ls.lock(C1, F, WL, 0, 10, OpenToLockOwner(o1, b"a"))
    clock.t += 10
    o2 = _opened(ls, C2)
    ls.lock(C2, F, WL, 20, 10, OpenToLockOwner(o2, b"b"))  # no overlap: no revocation
    assert ls.test_stateids(C1, [o1, lk]) == [Stat.OK, Stat.OK]


def test_conflict_with_a_courtesy_client_revokes_all_its_state_atomically() -> None:
    ls, clock = _courteous()
    o1 = _opened(ls, C1)
    other_file = b"fh-other"
    o1b = _opened(ls, C1, other_file)
    lk = ls.lock(C1, F, WL, 0, 10, OpenToLockOwner(o1, b"a"))
    lkb = ls.lock(C1, other_file, WL, 0, 10, OpenToLockOwner(o1b, b"a"))
    ls.renew(C2)
    clock.t += 3
    ls.renew(C2)
    o2 = _opened(ls, C2)
    lk2 = ls.lock(C2, F, WL, 5, 1, OpenToLockOwner(o2, b"b"))  # granted: C1 was revoked
    assert lk2.seqid == 1
    # Every stateid of the expired client answers EXPIRED, on every file.
    assert ls.test_stateids(C1, [o1, lk, o1b, lkb]) == [Stat.EXPIRED] * 4
    assert ls.locks_of(other_file, C1, b"a") == []
    assert not ls.client_has_state(C1)
    assert other_file not in ls.files
    # When it comes back, SEQUENCE tells it, until it has freed every revoked stateid.
    ls.renew(C1)
    assert ls.status_flags(C1) == SeqStatus.EXPIRED_ALL_STATE_REVOKED
    assert _err(ls.check_io, C1, o1, F, False) == Stat.EXPIRED
    assert _err(ls.locku, C1, lk, F, WL, 0, 10) == Stat.EXPIRED
    for sid in (o1, lk, o1b):
        ls.free_stateid(C1, sid)
    assert ls.status_flags(C1) == SeqStatus.EXPIRED_ALL_STATE_REVOKED
    ls.free_stateid(C1, lkb)
    assert ls.status_flags(C1) == 0
    assert ls.test_stateids(C1, [o1]) == [Stat.BAD_STATEID]
    assert ls.status_flags(C2) == 0


def test_share_conflict_with_a_courtesy_client_revokes_it() -> None:
    ls, clock = _courteous()
    o1 = _opened(ls, C1, deny=ShareDeny.BOTH)
    assert _err(ls.open, C2, b"x", F, ShareAccess.READ, DN) == Stat.SHARE_DENIED  # still live
    clock.t += 3
    ls.renew(C2)
    assert ls.open(C2, b"x", F, ShareAccess.READ, DN).new
    assert ls.test_stateids(C1, [o1]) == [Stat.EXPIRED]


def test_live_conflict_wins_over_courtesy_revocation() -> None:
    ls, clock = _courteous()
    o1, o3 = _opened(ls, C1), _opened(ls, C3)
    ls.lock(C1, F, RL, 0, 10, OpenToLockOwner(o1, b"a"))
    clock.t += 3
    ls.renew(C3)
    ls.lock(C3, F, RL, 0, 10, OpenToLockOwner(o3, b"c"))  # readers share: no conflict
    ls.renew(C2)
    o2 = _opened(ls, C2)
    with pytest.raises(LockDenied) as ei:
        ls.lock(C2, F, WL, 0, 10, OpenToLockOwner(o2, b"b"))
    assert ei.value.conflict.clientid == C3
    # Nothing was revoked, since the lock could not be granted anyway.
    assert ls.test_stateids(C1, [o1]) == [Stat.OK]


def test_lockt_ignores_courtesy_locks_without_revoking() -> None:
    ls, clock = _courteous()
    o1 = _opened(ls, C1)
    ls.lock(C1, F, WL, 0, 10, OpenToLockOwner(o1, b"a"))
    clock.t += 3
    ls.renew(C2)
    ls.lockt(C2, F, WL, 0, 10, b"b")
    assert ls.test_stateids(C1, [o1]) == [Stat.OK]


def test_admin_revocation_flag() -> None:
    ls, _ = _courteous()
    o1 = _opened(ls, C1)
    assert ls.revoke_client(C1) == 1
    assert ls.test_stateids(C1, [o1]) == [Stat.ADMIN_REVOKED]
    assert ls.status_flags(C1) == SeqStatus.ADMIN_STATE_REVOKED
    assert ls.revoke_client(C1, Revoked.ADMIN) == 0


def test_reap_caps_courtesy_clients_by_age_and_count() -> None:
    clock = Clock()
    ls = LockingState(3, lease_time=2, clock=clock, max_courtesy_clients=2, courtesy_max_age=100)
    sids = {}
    for i, cid in enumerate((C1, C2, C3)):
        sids[cid] = _opened(ls, cid, b"f%d" % i)
        clock.t += 1
    clock.t += 5  # all three expired, C1 longest
    assert ls.reap() == [C1]  # over the count cap by one: the oldest goes
    assert ls.test_stateids(C1, [sids[C1]]) == [Stat.BAD_STATEID]
    assert ls.test_stateids(C2, [sids[C2]]) == [Stat.OK]
    ls.renew(C2)
    clock.t += 150
    assert sorted(ls.reap()) == [C2, C3]  # past the age cap
    assert not ls.files and len(ls.stateids) == 0


def test_purge_client_forgets_everything() -> None:
    ls, _ = _courteous()
    o = _opened(ls, C1)
    ls.lock(C1, F, WL, 0, 1, OpenToLockOwner(o, b"a"))
    ls.revoke_client(C1)
    _opened(ls, C1, b"again")
    ls.purge_client(C1)
    assert len(ls.stateids) == 0 and not ls.files and not ls.client_has_state(C1)
    assert ls.status_flags(C1) == 0


# -- interleaved clients ---------------------------------------------------------------------------
def _check_invariants(ls: LockingState) -> None:
    live = [s for s in ls.stateids._by_other.values() if not s.revoked]
    for key, fs in ls.files.items():
        assert fs, "an empty file record was kept"
        # Shares: the per-file record matches the live open stateids, and no two conflict.
        opens = [s for s in live if isinstance(s, OpenState) and s.file == key]
        assert set(fs.shares.holders) == set(opens)
        for a in opens:
            for b in opens:
                if a is not b:
                    assert not (a.access & b.deny), "share reservations conflict"
        # Locks: no two owners hold conflicting overlapping locks.
        owners = list(fs.locks.owners.items())
        for i, (k1, r1) in enumerate(owners):
            for k2, r2 in owners[i + 1:]:
                for s1, e1, t1 in r1:
                    for s2, e2, t2 in r2:
                        if s1 < e2 and s2 < e1:
                            assert t1 is RL and t2 is RL, f"{k1} and {k2} hold conflicting locks"
            # Every owner with locks has a live lock stateid on the file.
            assert any(isinstance(s, LockState) and s.owner.key == k1 and s.file == key for s in live)
    for s in live:
        assert s.file in ls.files or isinstance(s, LockState)
        if isinstance(s, LockState):
            assert s.open in s.open.owner.opens.values()


async def _client(ls: LockingState, cid: int, rng: random.Random, files: list[bytes]) -> None:
    opens: dict[bytes, Stateid] = {}
    locks: dict[bytes, Stateid] = {}
    last: dict[bytes, int] = {}

    def seen(sid: Stateid) -> Stateid:
        # Each change of one stateid moves its seqid by exactly one; a new one starts at 1.
        assert sid.seqid == (next_seqid(last[sid.other]) if sid.other in last else 1)
        last[sid.other] = sid.seqid
        return sid
    for _ in range(40):
        f = rng.choice(files)
        what = rng.random()
        try:
            if f not in opens or what < 0.15:
                async with ls.serialized(f):
                    access = rng.choice([1, 2, 3])
                    deny = rng.choice([0, 0, 0, 1, 2])
                    ls.check_open(cid, b"oo", f, access, deny)
                    await asyncio.sleep(0)  # the file-system step of OPEN
                    opens[f] = seen(ls.open(cid, b"oo", f, access, deny).stateid)
            elif what < 0.6:
                lt = rng.choice([RL, WL])
                off, ln = rng.randrange(0, 50), rng.randrange(1, 20)
                await asyncio.sleep(0)
                if f in locks:
                    locks[f] = seen(ls.lock(cid, f, lt, off, ln, ExistLockOwner(Stateid(0, locks[f].other))))
                else:
                    locks[f] = seen(ls.lock(cid, f, lt, off, ln,
                                             OpenToLockOwner(Stateid(0, opens[f].other), b"lo")))
            elif what < 0.85 and f in locks:
                await asyncio.sleep(0)
                locks[f] = seen(ls.locku(cid, Stateid(0, locks[f].other), f, RL, rng.randrange(0, 50),
                                         rng.choice([5, NFS4_UINT64_MAX])))
            elif what < 0.95:
                await asyncio.sleep(0)
                ls.close(cid, Stateid(0, opens.pop(f).other), f)
                locks.pop(f, None)
            else:
                ls.lockt(cid, f, WL, 0, NFS4_UINT64_MAX, b"lo")
        except Nfs4Error as exc:
            assert exc.status in (Stat.DENIED, Stat.SHARE_DENIED, Stat.OPENMODE), exc
        _check_invariants(ls)


@pytest.mark.parametrize("seed", range(25))
def test_interleaved_conflicting_clients_never_corrupt_state(seed: int) -> None:
    async def main() -> None:
        ls = LockingState(9)
        files = [b"shared-a", b"shared-b"]
        await asyncio.gather(*[_client(ls, cid, random.Random(seed * 10 + i), files)
                               for i, cid in enumerate((C1, C2, C3))])
        _check_invariants(ls)
        # Closing everything leaves nothing behind.
        for s in [s for s in ls.stateids._by_other.values() if isinstance(s, OpenState)]:
            ls.close(s.clientid, Stateid(0, s.other), s.file)
        assert not ls.files and len(ls.stateids) == 0

    asyncio.run(main())


def test_serialized_orders_check_and_record_across_awaits() -> None:
    # Two OPENs with DENY_WRITE+WRITE that each await between check and record: without the
    # mutex both checks would pass; with it the second sees the first.
    async def main() -> list[int]:
        ls = LockingState(9)

        async def opener(cid: int) -> int:
            try:
                async with ls.serialized(F):
                    ls.check_open(cid, b"o", F, ShareAccess.BOTH, ShareDeny.WRITE)
                    await asyncio.sleep(0.001)
                    ls.open(cid, b"o", F, ShareAccess.BOTH, ShareDeny.WRITE)
                return Stat.OK
            except Nfs4Error as exc:
                return exc.status

        out = await asyncio.gather(opener(C1), opener(C2))
        assert not ls._mutexes
        return sorted(out)

    assert asyncio.run(main()) == [Stat.OK, Stat.SHARE_DENIED]


def test_courteous_expiry_with_a_short_real_lease() -> None:
    import time

    ls = LockingState(3, lease_time=0.5)
    o1 = _opened(ls, C1)
    ls.lock(C1, F, WL, 0, 10, OpenToLockOwner(o1, b"a"))
    o2 = _opened(ls, C2)
    assert _err(ls.lock, C2, F, WL, 0, 10, OpenToLockOwner(o2, b"b")) == Stat.DENIED
    time.sleep(0.7)
    ls.renew(C2)
    assert ls.test_stateids(C1, [o1]) == [Stat.OK]  # expired but uncontested: kept
    ls.lock(C2, F, WL, 0, 10, OpenToLockOwner(o2, b"b"))
    assert ls.test_stateids(C1, [o1]) == [Stat.EXPIRED]
    assert ls.status_flags(C1) == SeqStatus.EXPIRED_ALL_STATE_REVOKED
