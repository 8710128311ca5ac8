"""Which configuration changes a reload applies (securenfs.reload), on parsed configurations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from securenfs.config import parse
from securenfs.reload import export_changes, merge


def config(tmp_path: Path, **sections: Any) -> Any:
    data: dict[str, Any] = {"exports": [{"path": str(tmp_path), "pseudo": "/a", "sec": ["sys"]}]}
    data.update(sections)
    return parse(data, "test.toml")


def test_exports_and_preflight_change_live_the_rest_is_named(tmp_path: Path) -> None:
    running = config(tmp_path)
    new = config(tmp_path, server={"lease_time": 45}, preflight={"interval": 30, "strict": True},
                 exports=[{"path": str(tmp_path), "pseudo": "/b", "sec": ["sys"]}])
    merged, warnings = merge(running, new)
    assert [e.pseudo for e in merged.exports] == ["/b"]
    assert merged.preflight.interval == 30
    # Kept from the running configuration, each named once (grace_time follows lease_time).
    assert merged.server.lease_time == running.server.lease_time and merged.preflight.strict is False
    assert warnings == ["server.lease_time changed; it takes effect only after a restart",
                        "server.grace_time changed; it takes effect only after a restart",
                        "preflight.strict changed; it takes effect only after a restart"]
    assert export_changes(running.exports, merged.exports) == {"added": ["/b"], "removed": ["/a"], "changed": []}


def test_same_configuration_changes_nothing(tmp_path: Path) -> None:
    running = config(tmp_path)
    merged, warnings = merge(running, config(tmp_path))
    assert warnings == [] and merged.exports == running.exports
    assert export_changes(running.exports, merged.exports) == {"added": [], "removed": [], "changed": []}


def test_changed_client_rule_is_a_changed_export(tmp_path: Path) -> None:
    running = config(tmp_path)
    ro = config(tmp_path, exports=[{"path": str(tmp_path), "pseudo": "/a", "sec": ["sys"],
                                    "clients": [{"match": "*", "access": "ro"}]}])
    merged, _ = merge(running, ro)
    assert export_changes(running.exports, merged.exports)["changed"] == ["/a"]
