"""The recovery wiring's pure parts: the [recovery] config section, client ids that carry the
boot epoch, and the status the admin socket shows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from securenfs import config
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.recovery.grace import GraceManager
from securenfs.recovery.service import Recovery
from securenfs.recovery.sqlite import SqliteRecoveryStore
from securenfs.state.clients import ClientTable


@pytest.mark.parametrize(("table", "key", "words"), [
    ({"backend": "zookeeper"}, "recovery.backend", "sqlite"),
    ({"bakend": "sqlite"}, "recovery.bakend", "unknown key"),
    ({"backend": "etcd", "etcd_endpoints": ["127.0.0.1:2379"]}, "recovery.node_id", "its own name"),
    ({"backend": "etcd", "node_id": "a"}, "recovery.etcd_endpoints", "host:port"),
    ({"member_ttl": 0}, "recovery.member_ttl", "between 2 and 600"),
    ({"etcd_endpoints": ["no-port"]}, "recovery.etcd_endpoints", "host:port"),
])
def test_bad_recovery_section_names_key_and_fix(table: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(config.ConfigError) as ei:
        config.parse({"recovery": table}, "site.toml")
    assert ei.value.key == key and ei.value.source == "site.toml"
    assert words in str(ei.value)


def test_recovery_section_parsed_and_dumped() -> None:
    cfg = config.parse({"recovery": {"backend": "etcd", "node_id": "nfs2", "member_ttl": 4,
                                     "etcd_endpoints": ["10.0.0.1:2379", "10.0.0.2:2379"]}})
    assert (cfg.recovery.backend, cfg.recovery.node_id, cfg.recovery.member_ttl) == ("etcd", "nfs2", 4)
    text = config.dump(cfg)
    again = config.parse(__import__("tomllib").loads(text.replace('hostname = ""', "")))
    assert again.recovery == cfg.recovery
    assert 'backend = "sqlite"' in config.dump(config.parse({}))


def test_client_id_from_an_earlier_epoch_is_stale() -> None:
    before = ClientTable(b"o", b"s", 90, boot_epoch=7)
    after = ClientTable(b"o", b"s", 90, boot_epoch=8)
    old_id = before._new_id()
    assert old_id >> 32 == 7 and after._new_id() >> 32 == 8
    with pytest.raises(Nfs4Error) as ei:
        after.require(old_id)
    assert ei.value.status == Stat.STALE_CLIENTID and "before a restart" in str(ei.value)


def test_no_recorded_client_means_no_grace_and_status_lists_the_missing(tmp_path: Path) -> None:
    async def main() -> None:
        r = Recovery(SqliteRecoveryStore(tmp_path), GraceManager(60), lease_time=60)
        await r.start(1)
        assert not r.grace.enforcing  # ended before the first request
        await r.client_confirmed(b"Linux NFSv4.1 ws1", "krb5:nfs/ws1@EX")
        await r.stop()
        r = Recovery(SqliteRecoveryStore(tmp_path), GraceManager(60), lease_time=60)
        await r.start(2)
        st = r.status()
        assert st["state"] == "in_grace" and st["clients_to_reclaim"] == ["Linux NFSv4.1 ws1 (krb5:nfs/ws1@EX)"]
        r.reclaim_complete(b"Linux NFSv4.1 ws1")
        await r.step()
        st = r.status()
        assert st["state"] == "normal" and st["clients_to_reclaim"] == []
        await r.stop()

    asyncio.run(main())


def test_clean_stop_forgets_clients_without_state(tmp_path: Path) -> None:
    async def main() -> None:
        r = Recovery(SqliteRecoveryStore(tmp_path), GraceManager(60), lease_time=60)
        await r.start(1)
        await r.client_confirmed(b"holder", None)
        await r.client_confirmed(b"idle", None)
        await r.forget_stateless([b"idle"])
        await r.stop()
        r = Recovery(SqliteRecoveryStore(tmp_path), GraceManager(60), lease_time=60)
        await r.start(2)
        assert r.grace.may_reclaim(b"holder") and not r.grace.may_reclaim(b"idle")
        await r.stop()

    asyncio.run(main())


def test_restarted_client_inherits_its_owners_stable_record() -> None:
    """The store keeps one record per client owner: after a client restart (new verifier,
    RFC 8881 §18.35.5 case 4) the new client id knows its owner is recorded, so its expiry
    removes that record instead of leaving it until the next grace period ends."""
    from securenfs.rpc.auth import Credential
    from securenfs.state.clients import ExchangeRequest

    t = ClientTable(b"o", b"s", 90, boot_epoch=3)
    cred = Credential(1, 1, uid=0, gid=0)
    first = t.get(t.exchange_id(ExchangeRequest(b"owner", b"v1" * 4, 0, 0), cred, "10.0.0.1").client.clientid)
    assert first is not None
    t.confirm(first)
    first.recorded = True  # it opened something
    second = t.get(t.exchange_id(ExchangeRequest(b"owner", b"v2" * 4, 0, 0), cred, "10.0.0.1").client.clientid)
    assert second is not None and not second.recorded
    t.confirm(second)
    assert second.recorded and t.get(first.clientid) is None
