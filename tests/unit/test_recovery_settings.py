"""The [recovery] configuration section: defaults, etcd requirements, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from securenfs.recovery.settings import RecoveryConfigError, build_recovery, settings_from_mapping
from securenfs.recovery.sqlite import SqliteRecoveryStore


def test_default_is_sqlite_in_the_state_directory(tmp_path):
    s = settings_from_mapping({})
    r = build_recovery(s, tmp_path, grace_time=90, lease_time=90)
    assert isinstance(r.store, SqliteRecoveryStore) and r.store.path == Path(tmp_path) / "recovery.db"
    assert r.cluster is None and r.grace.grace_time == 90


def test_etcd_backend_builds_store_with_cluster_hooks(tmp_path):
    s = settings_from_mapping({"backend": "etcd", "node_id": "nfs1",
                               "etcd_endpoints": ["10.0.0.1:2379", "http://10.0.0.2:2379"]})
    r = build_recovery(s, tmp_path, grace_time=60, lease_time=60)
    assert r.cluster is r.store
    assert r.store.endpoints == ["10.0.0.1:2379", "10.0.0.2:2379"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("section, key", [
    ({"backend": "zookeeper"}, "recovery.backend"),
    ({"backend": "etcd", "etcd_endpoints": ["a:1"]}, "recovery.node_id"),
    ({"backend": "etcd", "node_id": "n1"}, "recovery.etcd_endpoints"),
    ({"etcd_endpoints": ["no-port"]}, "recovery.etcd_endpoints"),
    ({"node_id": "a/b"}, "recovery.node_id"),
    ({"member_ttl": 1}, "recovery.member_ttl"),
    ({"etcd_prefix": "securenfs"}, "recovery.etcd_prefix"),
    ({"backnd": "etcd"}, "recovery.backnd"),
])
def test_bad_values_name_the_key(section, key):
    with pytest.raises(RecoveryConfigError) as ei:
        settings_from_mapping(section)
    assert key in str(ei.value)
