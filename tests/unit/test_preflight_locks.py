"""EXP-004: with the etcd backend, byte-range locks are cluster-wide only on file systems that
carry them to every node; exports on local file systems are flagged, per export."""

from __future__ import annotations

from pathlib import Path

from preflight.checks.exports import LOCAL_FS, statfs_type
from preflight.gate import decide_exports
from preflight.registry import load_all
from preflight.result import Severity
from preflight.runner import run_checks
from preflight.settings import ExportSpec, PreflightSettings


def test_local_file_system_is_flagged_for_an_etcd_cluster_and_stays_served(tmp_path: Path) -> None:
    magic = statfs_type(tmp_path)
    assert magic in LOCAL_FS  # the test machine's temporary directory is on a local file system
    exports = [ExportSpec("/data", tmp_path, ["sys"]), ExportSpec("/proc", Path("/proc"), ["sys"])]
    rep = run_checks(PreflightSettings(exports=exports, recovery_backend="etcd"), load_all().select(["EXP-004"]))
    by_key = {r.key: r for r in rep.results}
    local = by_key["/data"]
    assert local.severity == Severity.WARNING
    assert LOCAL_FS[magic] in local.summary and "not cluster-wide" in local.summary
    assert "active/passive" in local.remedy and "deny modes" in local.detail
    # A file system of a type the check does not know (procfs) is not called safe either.
    assert by_key["/proc"].severity == Severity.WARNING and "unknown type" in by_key["/proc"].summary
    # A warning does not switch the export off (the server cannot tell active/active from
    # active/passive; the operator can, with --fail-on warning).
    assert all(d.enabled for d in decide_exports(rep, exports))


def test_one_node_is_always_lock_safe(tmp_path: Path) -> None:
    exports = [ExportSpec("/data", tmp_path, ["sys"])]
    (res,) = run_checks(PreflightSettings(exports=exports), load_all().select(["EXP-004"])).results
    assert res.severity == Severity.OK and "sqlite" in res.summary


def test_backend_comes_from_the_server_configuration() -> None:
    from securenfs.config import Config

    cfg = Config()
    cfg.recovery.backend = "etcd"
    assert PreflightSettings.from_server_config(cfg).recovery_backend == "etcd"
