"""Mapper policy with fake backends: three-way outcomes, chain order, coalescing,
outage window, numeric owners, machine principals, foreign names, group cap."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from idmap import IdmapConfig, IdmapNotFound, IdMapper, IdmapUnavailable
from idmap.errors import BackendUnavailable
from idmap.records import CacheState, GroupRec, UserRec


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeBackend:
    def __init__(self, name: str = "fake", users: dict[str, UserRec] | None = None) -> None:
        self.name = name
        self.users = users if users is not None else {"alice": UserRec("alice", 1000, 100)}
        self.groups = {"staff": GroupRec("staff", 100)}
        self.down = False
        self.calls = 0
        self.gate: threading.Event | None = None
        self.extra_groups: tuple[int, ...] = (100, 200)

    def _enter(self) -> None:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.down:
            raise BackendUnavailable("server down")

    def user_by_name(self, name: str) -> UserRec | None:
        self._enter()
        return self.users.get(name)

    def user_by_uid(self, uid: int) -> UserRec | None:
        self._enter()
        return next((u for u in self.users.values() if u.uid == uid), None)

    def user_by_principal(self, principal: str, shortname: str | None) -> UserRec | None:
        self._enter()
        return self.users.get(shortname) if shortname else None

    def group_by_name(self, name: str) -> GroupRec | None:
        self._enter()
        return self.groups.get(name)

    def group_by_gid(self, gid: int) -> GroupRec | None:
        self._enter()
        return next((g for g in self.groups.values() if g.gid == gid), None)

    def groups_of(self, user: UserRec) -> tuple[int, ...]:
        return self.extra_groups

    def status(self) -> dict[str, object]:
        return {"online": not self.down}

    def close(self) -> None:
        pass


def config(**extra: Any) -> IdmapConfig:
    return IdmapConfig.from_mapping({"domain": "example.com", "local_realms": ["EXAMPLE.COM"],
                                     **extra})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, *backends: FakeBackend, **extra: Any) -> IdMapper:
    return IdMapper(config(**extra), backends or (FakeBackend(),), clock=clock)


def test_outage_is_never_cached_as_not_found(clock: Clock) -> None:
    b = FakeBackend()
    m = make(clock, b)
    b.down = True
    with pytest.raises(IdmapUnavailable):
        run(m.owner_to_uid("alice@example.com", allow_numeric=False))
    b.down = False
    assert run(m.owner_to_uid("alice@example.com", allow_numeric=False)).id == 1000
    # An authoritative "not found" is cached (negative TTL); the backend is asked once.
    for _ in range(3):
        with pytest.raises(IdmapNotFound):
            run(m.owner_to_uid("carol@example.com", allow_numeric=False))
    assert b.calls == 3  # down, alice, carol once


def test_chain_order_and_unavailable_first_backend(clock: Clock) -> None:
    first, second = FakeBackend("first", {}), FakeBackend("second")
    m = make(clock, first, second)
    assert run(m.owner_to_uid("alice@example.com", allow_numeric=False)).source == "second"
    first.down = True
    # The second backend knows alice: found despite the outage of the first.
    assert run(m.owner_to_uid("alice@example.com", allow_numeric=False,
                              use_cache=False)).source == "second"
    # Nobody knows bob, but the first backend could not be asked: unavailable, not unknown.
    with pytest.raises(IdmapUnavailable):
        run(m.owner_to_uid("bob@example.com", allow_numeric=False))


def test_concurrent_misses_are_coalesced(clock: Clock) -> None:
    b = FakeBackend()
    b.gate = threading.Event()
    m = make(clock, b)

    async def burst() -> list[int]:
        tasks = [asyncio.ensure_future(m.owner_to_uid("alice@example.com", allow_numeric=False))
                 for _ in range(100)]
        await asyncio.sleep(0.05)
        b.gate.set()  # type: ignore[union-attr]
        return [r.id for r in await asyncio.gather(*tasks)]

    assert run(burst()) == [1000] * 100
    assert b.calls == 1
    assert m.stats()["coalesced"] == 99


def test_stale_entries_served_during_outage(clock: Clock) -> None:
    b = FakeBackend()
    m = make(clock, b, cache={"positive_ttl": 10, "stale_max": 100}, outage_delay=1000)
    assert run(m.principal_to_identity("alice@EXAMPLE.COM")).cache is CacheState.MISS
    clock.now = 50
    b.down = True
    ident = run(m.principal_to_identity("alice@EXAMPLE.COM"))
    assert (ident.uid, ident.groups, ident.cache) == (1000, (100, 200), CacheState.STALE)
    clock.now = 200
    with pytest.raises(IdmapUnavailable):
        run(m.principal_to_identity("alice@EXAMPLE.COM"))


def test_outage_delay_window_then_fallback(clock: Clock) -> None:
    b = FakeBackend()
    b.down = True
    m = make(clock, b, outage_delay=30)
    with pytest.raises(IdmapUnavailable):
        run(m.principal_to_identity("alice@EXAMPLE.COM"))
    clock.now = 29
    with pytest.raises(IdmapUnavailable):
        run(m.owner_to_uid("alice@example.com", allow_numeric=False))
    clock.now = 31
    assert run(m.principal_to_identity("alice@EXAMPLE.COM")).source == "anon"
    with pytest.raises(IdmapNotFound):
        run(m.owner_to_uid("alice@example.com", allow_numeric=False))
    assert run(m.uid_to_owner(1000)).name == "1000"  # GETATTR: digits, at once
    b.down = False
    assert run(m.principal_to_identity("alice@EXAMPLE.COM")).uid == 1000
    assert m.outage_seconds() is None


def test_numeric_owner_policy(clock: Clock) -> None:
    m = make(clock)
    assert run(m.owner_to_uid("1234", allow_numeric=True)).id == 1234
    with pytest.raises(IdmapNotFound):  # Kerberos requests: names only
        run(m.owner_to_uid("1234", allow_numeric=False))
    with pytest.raises(IdmapNotFound):  # leading zeros are not numeric owners
        run(m.owner_to_uid("01234", allow_numeric=True))
    # A principal is never read as a numeric id.
    assert run(m.principal_to_identity("1000@EXAMPLE.COM")).source == "anon"
    assert run(m.uid_to_owner(4242)).name == "4242"
    m2 = make(clock, numeric={"emit_unmapped": False})
    assert run(m2.uid_to_owner(4242)).name == "nobody@example.com"


def test_foreign_domain_and_realm(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    m = make(clock)
    with caplog.at_level("WARNING", logger="idmap"):
        r = run(m.owner_to_uid("alice@other.org", allow_numeric=False))
        i = run(m.principal_to_identity("alice@example.com"))  # realms are case-sensitive
    assert (r.id, r.source) == (65534, "anon")
    assert "other.org" in (r.reason or "")
    assert i.source == "anon" and "case-sensitive" in (i.reason or "")
    assert any("alice@other.org" in rec.getMessage() for rec in caplog.records)
    strict = make(clock, foreign_owner="reject", unmapped_principal="reject")
    with pytest.raises(IdmapNotFound):
        run(strict.owner_to_uid("alice@other.org", allow_numeric=False))
    with pytest.raises(IdmapNotFound):
        run(strict.principal_to_identity("alice@OTHER.ORG"))


@pytest.mark.parametrize("policy,expected", [
    ({}, (65534, 65534)),
    ({"policy": "id", "uid": 900, "gid": 900}, (900, 900)),
    ({"policy": "root"}, (0, 0)),
])
def test_machine_principal_policies(clock: Clock, policy: dict[str, Any],
                                    expected: tuple[int, int]) -> None:
    m = make(clock, machine_principals=policy)
    for p in ("nfs/srv.example.com@EXAMPLE.COM", "host/srv@EXAMPLE.COM",
              "root/srv@EXAMPLE.COM", "SRV$@EXAMPLE.COM"):
        ident = run(m.principal_to_identity(p))
        assert ((ident.uid, ident.gid), ident.source) == (expected, "machine")
    # A user principal with an instance is not a machine and is not mapped.
    assert run(m.principal_to_identity("alice/admin@EXAMPLE.COM")).source == "anon"


def test_machine_principal_reject(clock: Clock) -> None:
    m = make(clock, machine_principals={"policy": "reject"})
    with pytest.raises(IdmapNotFound):
        run(m.principal_to_identity("nfs/srv@EXAMPLE.COM"))


def test_group_list_is_capped(clock: Clock) -> None:
    b = FakeBackend()
    b.extra_groups = tuple(range(1, 2001))
    m = make(clock, b, max_groups=16)
    assert run(m.principal_to_identity("alice@EXAMPLE.COM")).groups == tuple(range(1, 17))


def test_closed_mapper_reports_unavailable(clock: Clock) -> None:
    m = make(clock)
    m.close()
    with pytest.raises(IdmapUnavailable):
        run(m.owner_to_uid("alice@example.com", allow_numeric=False))
