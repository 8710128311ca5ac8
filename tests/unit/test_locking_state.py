"""LOCK/LOCKT/LOCKU, courteous revocation and interleaved clients through the state manager
(securenfs.state.opens.StateManager, the one open/lock state of the server)."""

from __future__ import annotations

import asyncio
import random

import pytest

from securenfs.locking import (
    NFS4_UINT64_MAX,
    LockDenied,
    LockType,
    Revoked,
    ShareAccess,
    ShareDeny,
    Stateid,
    next_seqid,
)
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.state.opens import LockState, OpenState, StateManager

C1, C2, C3 = 0x100, 0x200, 0x300
F = b"fh-lockfile"
RW, DN = ShareAccess.BOTH, ShareDeny.NONE
WL, RL = LockType.WRITE_LT, LockType.READ_LT


def _err(fn: object, *args: object, **kw: object) -> int:
    try:
        fn(*args, **kw)  # type: ignore[operator]
    except Nfs4Error as exc:
        return exc.status
    return Stat.OK


def sid(st: OpenState | LockState) -> Stateid:
    return Stateid(st.seqid, st.other)


def _opened(m: StateManager, cid: int, f: bytes = F, access: int = RW, deny: int = DN) -> Stateid:
    return sid(m.open(cid, b"oo-%x" % cid, f, access, deny)[0])


def _lock(m: StateManager, cid: int, lt: int, off: int, ln: int, *, o: Stateid | None = None,
          owner: bytes | None = None, lk: Stateid | None = None, f: bytes = F) -> Stateid:
    return sid(m.lock(cid, f, lt, off, ln, open_sid=o, lock_owner=owner, lock_sid=lk))


def test_denied_carries_the_conflicting_owner_range_and_type() -> None:
    m = StateManager(3)
    o1, o2 = _opened(m, C1), _opened(m, C2)
    _lock(m, C1, WL, 100, 50, o=o1, owner=b"pid-1")
    with pytest.raises(LockDenied) as ei:
        _lock(m, C2, RL, 120, 1, o=o2, owner=b"pid-2")
    c = ei.value.conflict
    assert ei.value.status == Stat.DENIED
    assert (c.offset, c.length, c.locktype, c.clientid, c.owner) == (100, 50, WL, C1, b"pid-1")
    # A denied first LOCK creates no lock stateid and no lock-owner.
    assert not m.clients[C2].locks and not m.clients[C2].lock_owners
    assert m.locks_of(F, C2, b"pid-2") == []


def test_blocking_types_are_answered_like_plain_ones() -> None:
    m = StateManager(3)
    o1, o2 = _opened(m, C1), _opened(m, C2)
    _lock(m, C1, LockType.WRITEW_LT, 0, 10, o=o1, owner=b"a")
    assert _err(_lock, m, C2, LockType.READW_LT, 5, 1, o=o2, owner=b"b") == Stat.DENIED
    assert m.locks_of(F, C1, b"a") == [(0, 10, WL)]


def test_lockt_reports_without_changing_anything() -> None:
    m = StateManager(3)
    o1 = _opened(m, C1)
    lk = _lock(m, C1, WL, 0, NFS4_UINT64_MAX, o=o1, owner=b"a")
    with pytest.raises(LockDenied) as ei:
        m.lockt(C2, F, RL, 1 << 40, 10, b"b")
    assert ei.value.conflict.length == NFS4_UINT64_MAX
    m.lockt(C1, F, WL, 0, 10, b"a")  # the owner's own lock does not conflict
    m.lockt(C2, b"unopened-file", WL, 0, 10, b"b")
    assert m.test_stateids(C1, [lk]) == [Stat.OK]
    assert b"unopened-file" not in m.files


def test_lock_input_errors() -> None:
    m = StateManager(3)
    o = _opened(m, C1)
    assert _err(_lock, m, C1, WL, 0, 0, o=o, owner=b"a") == Stat.INVAL
    assert _err(_lock, m, C1, WL, 10, NFS4_UINT64_MAX - 5, o=o, owner=b"a") == Stat.INVAL
    assert _err(m.lockt, C1, F, WL, 0, 0, b"a") == Stat.INVAL
    assert _err(_lock, m, C1, 7, 0, 1, o=o, owner=b"a") == Stat.INVAL
    assert _err(_lock, m, C1, WL, 0, 1, o=o, owner=b"x" * 1025) == Stat.INVAL
    lk = _lock(m, C1, WL, 0, 1, o=o, owner=b"a")
    assert _err(m.locku, C1, lk, F, WL, 5, 0) == Stat.INVAL
    assert _err(m.locku, C1, lk, F, WL, NFS4_UINT64_MAX, 2) == Stat.INVAL
    assert m.locks_of(F, C1, b"a") == [(0, 1, WL)]


def test_range_ending_exactly_at_two_to_the_64_is_accepted() -> None:
    # RFC 8881 §18.10.3: only offset + length beyond 2**64 is NFS4ERR_INVAL.
    m = StateManager(3)
    o1, o2 = _opened(m, C1), _opened(m, C2)
    lk = _lock(m, C1, WL, 2, (1 << 64) - 2, o=o1, owner=b"a")
    assert m.locks_of(F, C1, b"a") == [(2, 1 << 64, WL)]
    with pytest.raises(LockDenied):
        m.lockt(C2, F, RL, NFS4_UINT64_MAX, 1, b"b")
    m.lockt(C2, F, WL, 0, 2, b"b")
    assert _err(_lock, m, C2, WL, 3, (1 << 64) - 2, o=o2, owner=b"b") == Stat.INVAL
    m.locku(C1, lk, F, WL, 2, (1 << 64) - 2)
    assert m.locks_of(F, C1, b"a") == []


def test_write_lock_needs_write_open() -> None:
    m = StateManager(3)
    o = _opened(m, C1, access=ShareAccess.READ)
    assert _err(_lock, m, C1, WL, 0, 1, o=o, owner=b"a") == Stat.OPENMODE
    assert _lock(m, C1, RL, 0, 1, o=o, owner=b"a").seqid == 1


def test_lock_split_merge_upgrade_downgrade_through_stateids() -> None:
    m = StateManager(3)
    o1, o2 = _opened(m, C1), _opened(m, C2)
    lk = _lock(m, C1, RL, 0, 100, o=o1, owner=b"a")
    lk = _lock(m, C1, WL, 40, 20, lk=lk)  # upgrade of a sub-range
    assert m.locks_of(F, C1, b"a") == [(0, 40, RL), (40, 60, WL), (60, 100, RL)]
    lk2 = _lock(m, C2, RL, 0, 10, o=o2, owner=b"b")  # readers share
    assert _err(_lock, m, C2, RL, 45, 1, lk=lk2) == Stat.DENIED
    lk = sid(m.locku(C1, lk, F, WL, 45, 10))  # split the write lock
    assert m.locks_of(F, C1, b"a") == [(0, 40, RL), (40, 45, WL), (55, 60, WL), (60, 100, RL)]
    lk2 = _lock(m, C2, WL, 46, 5, lk=lk2)
    lk = _lock(m, C1, RL, 40, 5, lk=lk)  # downgrade
    lk = _lock(m, C1, RL, 55, 5, lk=lk)
    assert m.locks_of(F, C1, b"a") == [(0, 45, RL), (55, 100, RL)]
    assert lk.seqid == 5  # one bump per LOCK and LOCKU


def test_open_to_lock_owner_twice_reuses_the_lock_stateid() -> None:
    m = StateManager(3)
    o = _opened(m, C1)
    a = _lock(m, C1, RL, 0, 1, o=o, owner=b"a")
    b = _lock(m, C1, RL, 5, 1, o=o, owner=b"a")
    assert a.other == b.other and b.seqid == 2


def test_lock_owner_and_open_owner_are_separate() -> None:
    # The same opaque bytes as an open-owner and as a lock-owner are two different owners.
    m = StateManager(3)
    o = sid(m.open(C1, b"same", F, RW, DN)[0])
    lk = _lock(m, C1, WL, 0, 10, o=o, owner=b"same")
    assert lk.other != o.other
    lk = sid(m.locku(C1, lk, F, WL, 0, 10))
    m.free_stateid(C1, lk)  # releasing the lock-owner ...
    assert m.test_stateids(C1, [o]) == [Stat.OK]  # ... leaves the open alone
    assert m.open(C1, b"same", F, RW, DN)[0].seqid == 2


def test_close_with_locks_held_is_refused_then_frees_everything() -> None:
    m = StateManager(3)
    o = _opened(m, C1)
    lk = _lock(m, C1, WL, 0, 10, o=o, owner=b"a")
    assert _err(m.close, C1, o, F) == Stat.LOCKS_HELD
    m.locku(C1, Stateid(0, lk.other), F, WL, 0, 10)
    m.close(C1, o, F)
    assert m.test_stateids(C1, [o, lk]) == [Stat.BAD_STATEID] * 2
    assert not m.files and len(m.table) == 0
    assert not m.clients[C1].open_owners and not m.clients[C1].lock_owners


# -- courteous expiry ------------------------------------------------------------------------------
def _courteous() -> tuple[StateManager, set[int]]:
    expired: set[int] = set()
    return StateManager(3, lease_expired=expired.__contains__), expired


def test_expired_client_without_conflict_is_untouched_by_others() -> None:
    m, expired = _courteous()
    o1 = _opened(m, C1)
    lk = _lock(m, C1, WL, 0, 10, o=o1, owner=b"a")
    expired.add(C1)
    o2 = _opened(m, C2)
    _lock(m, C2, WL, 20, 10, o=o2, owner=b"b")  # no overlap: no revocation
    assert m.test_stateids(C1, [o1, lk]) == [Stat.OK, Stat.OK]
    assert [cs.clientid for cs in m.courtesy_clients()] == [C1]


def test_conflict_with_a_courtesy_client_revokes_all_its_state_atomically() -> None:
    m, expired = _courteous()
    o1 = _opened(m, C1)
    other_file = b"fh-other"
    o1b = _opened(m, C1, other_file)
    lk = _lock(m, C1, WL, 0, 10, o=o1, owner=b"a")
    lkb = _lock(m, C1, WL, 0, 10, o=o1b, owner=b"a", f=other_file)
    expired.add(C1)
    o2 = _opened(m, C2)
    lk2 = _lock(m, C2, WL, 5, 1, o=o2, owner=b"b")  # granted: C1 was revoked
    assert lk2.seqid == 1
    # Every stateid of the expired client answers EXPIRED, on every file.
    assert m.test_stateids(C1, [o1, lk, o1b, lkb]) == [Stat.EXPIRED] * 4
    assert m.locks_of(other_file, C1, b"a") == []
    assert other_file not in m.files
    # When it comes back, SEQUENCE tells it, until it has freed every revoked stateid.
    expired.discard(C1)
    assert m.revoked_pending(C1)
    assert _err(m.check_io, C1, o1, F, False) == Stat.EXPIRED
    assert _err(m.locku, C1, lk, F, WL, 0, 10) == Stat.EXPIRED
    for s in (o1, lk, o1b):
        m.free_stateid(C1, s)
    assert m.revoked_pending(C1)
    m.free_stateid(C1, lkb)
    assert not m.revoked_pending(C1)
    assert m.test_stateids(C1, [o1]) == [Stat.BAD_STATEID]
    assert not m.revoked_pending(C2)


def test_share_conflict_with_a_courtesy_client_revokes_it() -> None:
    m, expired = _courteous()
    o1 = _opened(m, C1, deny=ShareDeny.BOTH)
    assert _err(m.open, C2, b"x", F, ShareAccess.READ, DN) == Stat.SHARE_DENIED  # still live
    expired.add(C1)
    assert m.open(C2, b"x", F, ShareAccess.READ, DN)[1]
    assert m.test_stateids(C1, [o1]) == [Stat.EXPIRED]


def test_live_conflict_wins_over_courtesy_revocation() -> None:
    m, expired = _courteous()
    o1, o3 = _opened(m, C1), _opened(m, C3)
    _lock(m, C1, RL, 0, 10, o=o1, owner=b"a")
    expired.add(C1)
    _lock(m, C3, RL, 0, 10, o=o3, owner=b"c")  # readers share: no conflict
    o2 = _opened(m, C2)
    with pytest.raises(LockDenied) as ei:
        _lock(m, C2, WL, 0, 10, o=o2, owner=b"b")
    assert ei.value.conflict.clientid == C3
    # Nothing was revoked, since the lock could not be granted anyway.
    assert m.test_stateids(C1, [o1]) == [Stat.OK]


def test_lockt_ignores_courtesy_locks_without_revoking() -> None:
    m, expired = _courteous()
    o1 = _opened(m, C1)
    _lock(m, C1, WL, 0, 10, o=o1, owner=b"a")
    expired.add(C1)
    m.lockt(C2, F, WL, 0, 10, b"b")
    assert m.test_stateids(C1, [o1]) == [Stat.OK]


def test_admin_revocation_and_drop_client() -> None:
    m, _ = _courteous()
    o1 = _opened(m, C1)
    _lock(m, C1, WL, 0, 1, o=o1, owner=b"a")
    assert m.revoke_client(C1, Revoked.ADMIN) == 2
    assert m.test_stateids(C1, [o1]) == [Stat.ADMIN_REVOKED]
    _opened(m, C1, b"again")
    m.drop_client(C1)
    assert len(m.table) == 0 and not m.files and C1 not in m.clients


# -- interleaved clients ---------------------------------------------------------------------------
def _check_invariants(m: StateManager) -> None:
    live = [s for s in m.table._by_other.values() if not s.revoked]
    for f in m.files.values():
        assert f.shares or f.locks or f.users, "an empty file record was kept"
        # Shares: the per-file record matches the live open stateids, and no two conflict.
        opens = [s for s in live if isinstance(s, OpenState) and s.file is f]
        assert set(f.shares.holders) == set(opens)
        for a in opens:
            for b in opens:
                if a is not b:
                    assert not (a.access & b.deny), "share reservations conflict"
        # Locks: no two owners hold conflicting overlapping locks.
        owners = list(f.locks.owners.items())
        for i, (k1, r1) in enumerate(owners):
            for k2, r2 in owners[i + 1:]:
                for s1, e1, t1 in r1:
                    for s2, e2, t2 in r2:
                        if s1 < e2 and s2 < e1:
                            assert t1 is RL and t2 is RL, f"{k1} and {k2} hold conflicting locks"
            # Every owner with locks has a live lock stateid on the file.
            assert any(isinstance(s, LockState) and s.owner.key == k1 and s.file is f for s in live)
    for s in live:
        assert m.files.get(s.file.fh) is s.file
        if isinstance(s, LockState):
            assert s in s.open.locks


async def _client(m: StateManager, cid: int, rng: random.Random, files: list[bytes]) -> None:
    opens: dict[bytes, Stateid] = {}
    locks: dict[bytes, Stateid] = {}
    last: dict[bytes, int] = {}

    def seen(st: OpenState | LockState) -> Stateid:
        # Each change of one stateid moves its seqid by exactly one; a new one starts at 1.
        assert st.seqid == (next_seqid(last[st.other]) if st.other in last else 1)
        last[st.other] = st.seqid
        return sid(st)
    for _ in range(40):
        f = rng.choice(files)
        what = rng.random()
        try:
            if f not in opens or what < 0.15:
                async with m.serialized(f):
                    access = rng.choice([1, 2, 3])
                    deny = rng.choice([0, 0, 0, 1, 2])
                    m.check_open(cid, b"oo", f, access, deny)
                    await asyncio.sleep(0)  # the file-system step of OPEN
                    opens[f] = seen(m.open(cid, b"oo", f, access, deny)[0])
            elif what < 0.6:
                lt = rng.choice([RL, WL])
                off, ln = rng.randrange(0, 50), rng.randrange(1, 20)
                await asyncio.sleep(0)
                if f in locks:
                    locks[f] = seen(m.lock(cid, f, lt, off, ln, lock_sid=Stateid(0, locks[f].other)))
                else:
                    locks[f] = seen(m.lock(cid, f, lt, off, ln, open_sid=Stateid(0, opens[f].other),
                                           lock_owner=b"lo"))
            elif what < 0.85 and f in locks:
                await asyncio.sleep(0)
                locks[f] = seen(m.locku(cid, Stateid(0, locks[f].other), f, RL, rng.randrange(0, 50),
                                        rng.choice([5, NFS4_UINT64_MAX])))
            elif what < 0.95:
                await asyncio.sleep(0)
                if f in locks:
                    m.locku(cid, Stateid(0, locks.pop(f).other), f, RL, 0, NFS4_UINT64_MAX)
                m.close(cid, Stateid(0, opens.pop(f).other), f)
            else:
                m.lockt(cid, f, WL, 0, NFS4_UINT64_MAX, b"lo")
        except Nfs4Error as exc:
            assert exc.status in (Stat.DENIED, Stat.SHARE_DENIED, Stat.OPENMODE), exc
        _check_invariants(m)


@pytest.mark.parametrize("seed", range(25))
def test_interleaved_conflicting_clients_never_corrupt_state(seed: int) -> None:
    async def main() -> None:
        m = StateManager(9)
        files = [b"shared-a", b"shared-b"]
        await asyncio.gather(*[_client(m, cid, random.Random(seed * 10 + i), files)
                               for i, cid in enumerate((C1, C2, C3))])
        _check_invariants(m)
        # Unlocking and closing everything leaves nothing behind.
        for s in [s for s in m.table._by_other.values() if isinstance(s, LockState)]:
            m.locku(s.clientid, Stateid(0, s.other), s.file.fh, RL, 0, NFS4_UINT64_MAX)
        for s in [s for s in m.table._by_other.values() if isinstance(s, OpenState)]:
            m.close(s.clientid, Stateid(0, s.other), s.file.fh)
        assert not m.files and len(m.table) == 0

    asyncio.run(main())


def test_serialized_orders_check_and_record_across_awaits() -> None:
    # Two OPENs with DENY_WRITE+WRITE that each await between check and record: without the
    # mutex both checks would pass; with it the second sees the first.
    async def main() -> list[int]:
        m = StateManager(9)

        async def opener(cid: int) -> int:
            try:
                async with m.serialized(F):
                    m.check_open(cid, b"o", F, ShareAccess.BOTH, ShareDeny.WRITE)
                    await asyncio.sleep(0.001)
                    m.open(cid, b"o", F, ShareAccess.BOTH, ShareDeny.WRITE)
                return Stat.OK
            except Nfs4Error as exc:
                return exc.status

        out = await asyncio.gather(opener(C1), opener(C2))
        assert m.files[F].users == 1  # only the open remains
        return sorted(out)

    assert asyncio.run(main()) == [Stat.OK, Stat.SHARE_DENIED]


def test_byte_ranges_of_a_client_are_bounded() -> None:
    from securenfs.state.opens import LIMIT_OWNER

    m = StateManager(3, max_lock_ranges=8)
    o1, o2 = _opened(m, C1), _opened(m, C2)
    lk = _lock(m, C1, WL, 0, 1, o=o1, owner=b"p")
    for i in range(1, 6):  # six disjoint ranges
        lk = _lock(m, C1, WL, 10 * i, 1, lk=lk)
    lk = _lock(m, C1, RL, 200, 100, lk=lk)
    assert m.clients[C1].nranges == 7
    # A LOCK may add two ranges: from 7 that could pass 8, so it is DENIED with the range
    # asked for and the limit owner.
    with pytest.raises(LockDenied) as ei:
        _lock(m, C1, WL, 100, 5, lk=lk)
    c = ei.value.conflict
    assert (c.offset, c.length, c.clientid, c.owner) == (100, 5, 0, LIMIT_OWNER)
    # Unlocking a whole range makes room; a write lock inside the read lock adds two.
    assert _err(m.locku, C1, Stateid(0, lk.other), F, WL, 50, 1) == Stat.OK
    lk = _lock(m, C1, WL, 220, 10, lk=Stateid(0, lk.other))
    assert m.clients[C1].nranges == 8  # the bound, never more
    # At the bound a LOCKU that would split a range is NFS4ERR_LOCK_RANGE; an end is fine.
    assert _err(m.locku, C1, Stateid(0, lk.other), F, WL, 240, 10) == Stat.LOCK_RANGE
    assert _err(m.locku, C1, Stateid(0, lk.other), F, WL, 290, 10) == Stat.OK
    assert m.clients[C1].nranges == 8
    # Another client has its own budget.
    _lock(m, C2, WL, 1000, 1, o=o2, owner=b"q")
    assert m.clients[C2].nranges == 1
    # Everything unlocked: the count is back to zero.
    assert _err(m.locku, C1, Stateid(0, lk.other), F, WL, 0, NFS4_UINT64_MAX) == Stat.OK
    assert m.clients[C1].nranges == 0
