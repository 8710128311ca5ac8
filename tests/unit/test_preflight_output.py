"""Report rendering, exit codes, the CLI's handling of bad arguments, and the export gate."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from preflight.cli import exit_code, main
from preflight.gate import decide_exports
from preflight.output import render_human, render_json, render_prometheus
from preflight.result import Result, Severity
from preflight.runner import Report
from preflight.settings import ExportSpec, PreflightSettings


def report(*results: Result) -> Report:
    return Report(
        list(results), 1_700_000_000.0, 1.25, {"fqdn": "nfs1.example.com", "realm": "EXAMPLE.COM"}
    )


R_OK = Result("DNS-001", Severity.OK, "fine", check="HostnameIsFQDN")
R_WARN = Result(
    "LEASE-001", Severity.WARNING, "lease short", remedy="Use 60-90 s.", kw={"lease_time": 20}
)
R_CRIT = Result(
    "KT-006",
    Severity.CRITICAL,
    "stale",
    detail="kvno",
    remedy="Re-export.",
    key="nfs/a@R",
    kw={"expected": 5, "got": [4]},
)
R_SKIP = Result("GSS-001", Severity.CRITICAL, "skipped", skipped_because=["KT-006"])


def test_human_output_one_line_per_problem_then_summary() -> None:
    out = io.StringIO()
    render_human(report(R_OK, R_WARN, R_CRIT, R_SKIP), out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("CRITICAL  KT-006") and lines[1].strip() == "-> Re-export."
    assert lines[2].startswith("WARNING   LEASE-001") and lines[3].strip() == "-> Use 60-90 s."
    assert lines[4].startswith("SKIPPED   GSS-001")
    assert lines[-1].startswith("1 critical, 0 errors, 1 warning, 1 ok, 1 skipped")
    assert "DNS-001" not in out.getvalue() and "\033[" not in out.getvalue()
    coloured = io.StringIO()
    render_human(report(R_CRIT), coloured, colour=True)
    assert "\033[1;31m" in coloured.getvalue()


def test_json_envelope() -> None:
    doc = json.loads(render_json(report(R_OK, R_CRIT, R_SKIP), 2))
    assert doc["schema"] == "securenfs-preflight/1"
    assert (
        doc["summary"]["exit_code"] == 2
        and doc["summary"]["CRITICAL"] == 1
        and doc["summary"]["SKIPPED"] == 1
    )
    crit = doc["results"][1]
    assert (
        crit["severity"] == "critical" and crit["key"] == "nfs/a@R" and crit["kw"]["expected"] == 5
    )
    assert {"id", "severity", "summary", "detail", "remedy", "duration"} <= set(crit)
    skip = doc["results"][2]
    assert skip["severity"] == "skipped" and skip["counts_as"] == "critical"
    assert skip["skipped_because"] == ["KT-006"]


def test_prometheus_text() -> None:
    text = render_prometheus(report(R_OK, R_WARN, R_CRIT))
    assert (
        'securenfs_preflight_check_status{id="KT-006",check="",key="nfs/a@R",skipped="false"} 30'
        in text
    )
    assert 'securenfs_preflight_results{status="WARNING"} 1' in text
    assert "securenfs_preflight_lease_seconds 20" in text
    assert 'securenfs_preflight_kdc_kvno{principal="nfs/a@R"} 5' in text
    assert "securenfs_preflight_worst_level 30" in text
    assert text.endswith("\n")


@pytest.mark.parametrize(
    "worst, fail_on, code",
    [
        (Severity.OK, None, 0),
        (Severity.WARNING, None, 1),
        (Severity.ERROR, None, 2),
        (Severity.CRITICAL, None, 2),
        (Severity.WARNING, "error", 0),
        (Severity.ERROR, "error", 2),
        (Severity.ERROR, "critical", 0),
        (Severity.WARNING, "warning", 2),
    ],
)
def test_exit_codes(worst: Severity, fail_on: str | None, code: int) -> None:
    assert exit_code(worst, fail_on) == code


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["--format", "xml"],
        ["--only", "NOPE-9"],
        ["--export", "/srv/data:/data:krb5p"],
        ["--export", "/d:/s:krb9"],
        ["--timeout", "0"],
    ],
)
def test_bad_arguments_exit_3_without_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("securenfs-preflight: ")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--fail-on" in capsys.readouterr().out


def test_offline_run_of_local_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.1.1 nfs1.example.com nfs1\n")
    argv = [
        "--hostname",
        "nfs1.example.com",
        "--hosts-file",
        str(hosts),
        "--only",
        "HOSTS-001,LEASE",
        "--lease-time",
        "90",
        "--grace-time",
        "60",
        "--format",
        "json",
    ]
    assert main(argv) == 2
    doc = json.loads(capsys.readouterr().out)
    by_id = {r["id"]: r for r in doc["results"]}
    assert by_id["HOSTS-001"]["severity"] == "error" and "line 2" in by_id["HOSTS-001"]["summary"]
    assert by_id["LEASE-002"]["severity"] == "error"  # grace shorter than lease


def test_gate_keeps_auth_sys_exports_when_kerberos_fails() -> None:
    exports = [
        ExportSpec("/krb", Path("/a"), ["krb5p"]),
        ExportSpec("/sys", Path("/b"), ["sys"]),
        ExportSpec("/mixed", Path("/c"), ["krb5i", "sys"]),
    ]
    rep = report(R_CRIT, R_SKIP)
    d = {x.pseudo: x for x in decide_exports(rep, exports)}
    assert not d["/krb"].enabled and [r.id for r in d["/krb"].reasons] == ["KT-006", "GSS-001"]
    assert d["/sys"].enabled and d["/sys"].reasons == [] and d["/sys"].flavors == ["sys"]
    assert d["/mixed"].enabled and d["/mixed"].flavors == ["sys"]
    ok_rep = report(R_OK, R_WARN)
    assert all(x.enabled for x in decide_exports(ok_rep, exports))


NTP_WRONG = Result("TIME-001", Severity.ERROR, "clock 600 s off NTP server ntp1", remedy="Fix NTP.")
KDC_CLOCK_OK = Result("TIME-004", Severity.OK, "clock agrees with KDC k1:88")
KDC_DOWN = Result("KDC-001", Severity.ERROR, "no KDC answered", remedy="Start the KDC.")
KDC_CLOCK_UNKNOWN = Result("TIME-004", Severity.ERROR, "skipped", skipped_because=["KDC-001"])
KEY_GONE = Result("KT-002", Severity.CRITICAL, "no nfs/ key", remedy="ktadd.")


def test_gate_ignores_a_wrong_ntp_server_while_the_kdc_clock_agrees() -> None:
    krb = [ExportSpec("/krb", Path("/a"), ["krb5p"])]
    (d,) = decide_exports(report(NTP_WRONG, KDC_CLOCK_OK), krb)
    assert d.enabled and d.flavors == ["krb5p"]
    # Without the KDC's clock to compare against, the NTP offset holds Kerberos back.
    (d,) = decide_exports(report(NTP_WRONG, KDC_DOWN, KDC_CLOCK_UNKNOWN), krb)
    assert not d.enabled and [r.id for r in d.reasons] == ["TIME-001", "KDC-001", "TIME-004"]


def test_gate_once_served_only_a_broken_keytab_switches_kerberos_off() -> None:
    krb = [ExportSpec("/krb", Path("/a"), ["krb5p"])]
    peers_down = report(NTP_WRONG, KDC_DOWN, KDC_CLOCK_UNKNOWN, R_SKIP)
    (d,) = decide_exports(peers_down, krb, served=True)
    assert d.enabled and d.flavors == ["krb5p"]
    (d,) = decide_exports(report(KDC_DOWN, KEY_GONE), krb, served=True)
    assert not d.enabled and [r.id for r in d.reasons] == ["KT-002"]
    # A key version the KDC issues and the keytab lacks (KT-006 with the KDC's answer) is broken too.
    (d,) = decide_exports(report(R_CRIT), krb, served=True)
    assert not d.enabled and [r.id for r in d.reasons] == ["KT-006"]


def test_gate_honours_results_about_one_export() -> None:
    exports = [ExportSpec("/sys", Path("/b"), ["sys"])]
    missing = Result("EXP-001", Severity.CRITICAL, "gone", key="/sys")
    (d,) = decide_exports(report(missing), exports)
    assert not d.enabled and d.reasons == [missing]


def test_settings_from_server_config() -> None:
    cfg = SimpleNamespace(
        server=SimpleNamespace(
            hostname="nfs1.example.com", state_dir=Path("/var/lib/x"), lease_time=60, grace_time=70
        ),
        kerberos=SimpleNamespace(
            keytab=Path("/etc/k"), principals=["nfs/nfs1.example.com@EX.COM"], krb5_conf=None
        ),
        preflight=SimpleNamespace(
            ntp_servers=["ntp1"],
            dns_servers=["10.0.0.1:53"],
            hosts_file=Path("/h"),
            timeout=7.0,
            probe_user="alice",
        ),
        idmap_raw={
            "domain": "example.com",
            "local_realms": ["EX.COM"],
            "ldap": {"uris": ["ldap://dc1"], "base": "dc=example,dc=com"},
        },
        exports=[SimpleNamespace(path=Path("/srv"), pseudo="/srv", sec=["krb5p", "sys"])],
    )
    s = PreflightSettings.from_server_config(cfg)
    assert (s.hostname, s.realm, s.keytab, s.lease_time, s.grace_time) == (
        "nfs1.example.com",
        "EX.COM",
        Path("/etc/k"),
        60,
        70,
    )
    assert s.ntp_servers == ["ntp1"] and s.dns_servers == ["10.0.0.1:53"] and s.timeout == 7.0
    assert (
        s.idmap_domain == "example.com"
        and s.ldap_uris == ["ldap://dc1"]
        and s.ldap_base_dn == "dc=example,dc=com"
        and s.probe_user == "alice"
    )
    assert s.exports[0].kerberos and s.exports[0].auth_sys


def test_run_preflight_selects_by_prefix() -> None:
    from preflight import run_preflight

    rep = run_preflight(PreflightSettings(lease_time=20, grace_time=90), only=["LEASE"])
    assert [(r.id, r.status) for r in rep.results] == [("LEASE-001", "WARNING"), ("LEASE-002", "OK")]
