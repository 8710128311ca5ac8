"""slapd stopped or hung mid-test: cached names keep resolving, uncached ones fail fast and
cleanly, and mapping recovers when slapd returns."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from idmap import IdmapConfig, IdmapNotFound, IdmapUnavailable, SyncIdMapper, build_mapper
from idmap.records import CacheState
from tests.support.slapd import DOMAIN, GROUPS, PEOPLE, REALM, SUFFIX, UID_BASE, Directory

TIMEOUT = 1.0


def outage_config(uri: str, *, positive_ttl: float = 0.3, outage_delay: float = 30.0) -> \
        IdmapConfig:
    return IdmapConfig.from_mapping({
        "domain": DOMAIN, "local_realms": [REALM], "backends": ["ldap"],
        "outage_delay": outage_delay,
        "cache": {"positive_ttl": positive_ttl, "negative_ttl": 5, "stale_max": 3600},
        "ldap": {"uris": [uri], "base": SUFFIX, "user_base": PEOPLE, "group_base": GROUPS,
                 "schema": "rfc2307bis", "timeout": TIMEOUT, "reconnect_min": 0.2,
                 "reconnect_max": 0.4},
    })


@pytest.fixture
def mapper(small_directory: Directory) -> Iterator[SyncIdMapper]:
    m = SyncIdMapper(build_mapper(outage_config(small_directory.uri)))
    yield m
    m.close()


def wait_for_recovery(m: SyncIdMapper, owner: str, limit: float = 15.0) -> int:
    deadline = time.monotonic() + limit
    while True:
        try:
            return m.owner_to_uid(owner, allow_numeric=False, use_cache=False).id
        except (IdmapUnavailable, IdmapNotFound):  # NotFound: past the outage window
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_stopped_slapd(small_directory: Directory, mapper: SyncIdMapper) -> None:
    assert mapper.principal_to_identity(f"alice@{REALM}").uid == 5001
    assert mapper.owner_to_uid(f"u00001@{DOMAIN}", allow_numeric=False).id == UID_BASE + 1
    assert mapper.uid_to_owner(UID_BASE + 1).name == f"u00001@{DOMAIN}"
    time.sleep(0.4)  # let the entries expire: only stale copies are left

    small_directory.stop()

    ident = mapper.principal_to_identity(f"alice@{REALM}")
    assert (ident.uid, ident.groups, ident.cache) == (5001, (5000, 5100, 5200, 5400, 5401),
                                                      CacheState.STALE)
    m = mapper.owner_to_uid(f"u00001@{DOMAIN}", allow_numeric=False)
    assert (m.id, m.cache) == (UID_BASE + 1, CacheState.STALE)
    assert mapper.uid_to_owner(UID_BASE + 1).name == f"u00001@{DOMAIN}"

    # Uncached: NFS4ERR_DELAY material, never "not found", never cached as such.
    started = time.monotonic()
    with pytest.raises(IdmapUnavailable):
        mapper.owner_to_uid(f"u00002@{DOMAIN}", allow_numeric=False)
    with pytest.raises(IdmapUnavailable):
        mapper.principal_to_identity(f"u00003@{REALM}")
    # GETATTR of an unmapped uid sends digits, not nobody.
    assert mapper.uid_to_owner(UID_BASE + 4).name == str(UID_BASE + 4)
    assert time.monotonic() - started < 3 * TIMEOUT  # bounded by the timeout, not hanging
    assert mapper.stats()["backends"]["ldap"]["online"] is False

    small_directory.start()
    assert wait_for_recovery(mapper, f"u00002@{DOMAIN}") == UID_BASE + 2
    assert mapper.principal_to_identity(f"u00003@{REALM}").uid == UID_BASE + 3
    assert mapper.uid_to_owner(UID_BASE + 4).name == f"u00004@{DOMAIN}"
    assert mapper.stats()["outage_seconds"] is None


def test_hung_slapd_is_bounded_by_the_timeout(small_directory: Directory,
                                              mapper: SyncIdMapper) -> None:
    assert mapper.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False).id == 5001
    time.sleep(0.4)
    small_directory.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(IdmapUnavailable):
            mapper.owner_to_uid(f"u00005@{DOMAIN}", allow_numeric=False)
        first = time.monotonic() - started
        # connect succeeds (the kernel accepts), the search times out: a few timeouts at most
        assert first < 4 * TIMEOUT
        # While offline the next uncached lookup fails at once instead of waiting again.
        started = time.monotonic()
        with pytest.raises(IdmapUnavailable):
            mapper.owner_to_uid(f"u00006@{DOMAIN}", allow_numeric=False)
        assert time.monotonic() - started < TIMEOUT
        assert mapper.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False).cache is \
            CacheState.STALE
    finally:
        small_directory.thaw()
    assert wait_for_recovery(mapper, f"u00005@{DOMAIN}") == UID_BASE + 5


def test_delay_window_then_documented_fallback(small_directory: Directory) -> None:
    m = SyncIdMapper(build_mapper(outage_config(small_directory.uri, outage_delay=0.5)))
    try:
        small_directory.stop()
        with pytest.raises(IdmapUnavailable):
            m.principal_to_identity(f"u00007@{REALM}")
        time.sleep(0.6)
        ident = m.principal_to_identity(f"u00007@{REALM}")
        assert (ident.uid, ident.source) == (65534, "anon")
        assert "unreachable" in (ident.reason or "")
        # Owner strings are refused (NFS4ERR_BADOWNER) rather than given to nobody.
        with pytest.raises(IdmapNotFound):
            m.owner_to_uid(f"u00008@{DOMAIN}", allow_numeric=False)
        small_directory.start()
        assert wait_for_recovery(m, f"u00007@{DOMAIN}") == UID_BASE + 7
        # Recovery ends the fallback: the principal maps to the real user again.
        assert m.principal_to_identity(f"u00007@{REALM}").uid == UID_BASE + 7
    finally:
        m.close()
