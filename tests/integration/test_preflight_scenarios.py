"""Preflight against real parts on loopback: a k5test KDC, a DNS responder, an NTP responder.

Each scenario breaks one thing; the test asserts that exactly the right check reports it with
the right severity, that checks depending on it are SKIPPED rather than repeating the error,
and that nothing else is reported as broken.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from keytabs.keytab import read_keytab
from preflight.cli import main as preflight_main
from preflight.gate import decide_exports
from preflight.result import Severity
from preflight.runner import Report, run_checks
from preflight.settings import ExportSpec, PreflightSettings
from tests.support.dnsserver import FakeDnsServer, Zone, host_zone
from tests.support.kdc import KdcRealm
from tests.support.ntpserver import FakeNtpServer

DOMAIN = "preflight.test"
GOOD = f"nfs1.{DOMAIN}"
GOOD_IP = "127.0.0.10"
HOSTS: dict[str, str] = {  # scenario host -> its address
    GOOD: GOOD_IP,
    f"stale.{DOMAIN}": "127.0.0.11",
    f"rc4.{DOMAIN}": "127.0.0.12",
    f"real.{DOMAIN}": "127.0.0.13",  # target of the alias below
}
ALIAS = f"alias.{DOMAIN}"


def good_zone() -> Zone:
    return host_zone(HOSTS, {ip: [name] for name, ip in HOSTS.items()}, {ALIAS: f"real.{DOMAIN}"})


@dataclass
class Env:
    kdc: KdcRealm
    tmp: Path
    dns: FakeDnsServer
    ntp: FakeNtpServer
    keytabs: dict[str, Path]

    def settings(self, host: str = GOOD, **changes: object) -> PreflightSettings:
        data = self.tmp / "data"
        data.mkdir(exist_ok=True)
        state = self.tmp / "state"
        state.mkdir(exist_ok=True)
        hosts = self.hosts_file(
            "good", f"127.0.0.1 localhost\n{HOSTS.get(host, GOOD_IP)} {host} {host.split('.')[0]}\n"
        )
        s = PreflightSettings(
            hostname=host,
            realm=self.kdc.realm,
            krb5_conf=self.kdc.krb5_conf,
            keytab=self.keytabs.get(host, self.keytabs[GOOD]),
            principals=[f"nfs/{host}@{self.kdc.realm}", f"host/{host}@{self.kdc.realm}"],
            ntp_servers=[self.ntp.address],
            dns_servers=[self.dns.address],
            hosts_file=hosts,
            timeout=10.0,
            peer_timeout=1.0,
            idmap_domain=DOMAIN,
            probe_user="root",
            exports=[ExportSpec("/data", data, ["krb5p", "krb5i"])],
            lease_time=90,
            grace_time=90,
            state_dir=state,
        )
        return replace(s, **changes)

    def hosts_file(self, name: str, text: str) -> Path:
        p = self.tmp / f"hosts.{name}"
        p.write_text(text)
        return p


@pytest.fixture(scope="module")
def env(kdc_realm: KdcRealm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("preflight")
    realm = kdc_realm.realm
    keytabs: dict[str, Path] = {}
    for host in (GOOD, f"stale.{DOMAIN}", ALIAS):
        kt = tmp / f"{host}.keytab"
        for svc in ("nfs", "host"):
            kdc_realm.add_principal(f"{svc}/{host}@{realm}")
            kdc_realm.extract_keytab(f"{svc}/{host}@{realm}", kt)
        keytabs[host] = kt
    # Stale: the KDC re-keys nfs/ after the keytab was written (kvno 2 vs 1 in the file).
    kdc_realm.k5.run_kadminl(["cpw", "-randkey", f"nfs/stale.{DOMAIN}@{realm}"])
    # RC4 only: the KDC itself holds only an RC4 key for nfs/, so tickets work but are weak.
    rc4 = f"rc4.{DOMAIN}"
    kt = tmp / f"{rc4}.keytab"
    kdc_realm.k5.run_kadminl(
        ["addprinc", "-randkey", "-e", "rc4-hmac:normal", f"nfs/{rc4}@{realm}"]
    )
    kdc_realm.add_principal(f"host/{rc4}@{realm}")
    kdc_realm.extract_keytab(f"nfs/{rc4}@{realm}", kt)
    kdc_realm.extract_keytab(f"host/{rc4}@{realm}", kt)
    keytabs[rc4] = kt
    dns = FakeDnsServer(good_zone())
    ntp = FakeNtpServer(0.0)
    try:
        yield Env(kdc_realm, tmp, dns, ntp, keytabs)
    finally:
        dns.close()
        ntp.close()


def problems(report: Report) -> dict[str, Severity]:
    """Worst severity per check id, over the results that are not OK and not skipped."""
    out: dict[str, Severity] = {}
    for r in report.results:
        if r.severity > Severity.OK and not r.skipped:
            out[r.id] = max(out.get(r.id, Severity.OK), r.severity)
    return out


def skipped(report: Report) -> set[str]:
    return {r.id for r in report.results if r.skipped}


def test_good_setup_reports_all_ok(env: Env) -> None:
    report = run_checks(env.settings())
    bad = [(r.id, r.status, r.summary) for r in report.results if r.severity or r.skipped]
    assert bad == []
    gss = report.by_id("GSS-001")
    assert {r.key for r in gss} == {f"nfs/{GOOD}@{env.kdc.realm}", f"host/{GOOD}@{env.kdc.realm}"}
    assert all("integrity and privacy" in r.summary for r in gss)
    assert [d.enabled for d in decide_exports(report, env.settings().exports)] == [True]


@pytest.mark.parametrize("offset, severity", [(3.0, Severity.WARNING), (400.0, Severity.CRITICAL)])
def test_clock_offset_is_judged(env: Env, offset: float, severity: Severity) -> None:
    skewed = FakeNtpServer(offset)
    try:
        report = run_checks(env.settings(ntp_servers=[skewed.address]))
    finally:
        skewed.close()
    assert problems(report) == {"TIME-001": severity}
    (r,) = report.by_id("TIME-001")
    assert abs(r.kw["offset"] - offset) < 0.5
    assert "chronyc" in r.remedy


def test_no_ntp_server_answering(env: Env) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        report = run_checks(env.settings(ntp_servers=[addr], peer_timeout=0.5))
    assert problems(report) == {"TIME-003": Severity.WARNING}
    assert skipped(report) == {"TIME-001"}


DNS_FAULTS = {
    "no-ptr": (
        {k: v for k, v in good_zone().items() if k[1] != "PTR"},
        {"DNS-003": Severity.ERROR},
    ),
    "ptr-elsewhere": (
        {**good_zone(), **host_zone({}, {GOOD_IP: [f"other.{DOMAIN}"]})},
        {"DNS-003": Severity.ERROR},
    ),
    "multiple-ptr": (
        {**good_zone(), **host_zone({}, {GOOD_IP: [GOOD, f"www.{DOMAIN}"]})},
        {"DNS-004": Severity.WARNING},
    ),
    "no-a-record": (
        {k: v for k, v in good_zone().items() if k[1] != "A"},
        {"DNS-002": Severity.CRITICAL},
    ),
}


@pytest.mark.parametrize("fault", sorted(DNS_FAULTS))
def test_dns_fault_found_by_right_check(env: Env, fault: str) -> None:
    zone, expected = DNS_FAULTS[fault]
    server = FakeDnsServer(zone)
    try:
        report = run_checks(env.settings(dns_servers=[server.address]))
    finally:
        server.close()
    assert problems(report) == expected
    # The krb5 canonicalisation check depends on clean DNS and must not repeat the finding.
    assert "KRB-005" in skipped(report)


def test_cname_in_path_is_flagged(env: Env) -> None:
    hosts = env.hosts_file(
        "alias", f"127.0.0.1 localhost\n{HOSTS[f'real.{DOMAIN}']} {ALIAS} alias\n"
    )
    report = run_checks(env.settings(ALIAS, hosts_file=hosts))
    assert problems(report) == {"DNS-004": Severity.WARNING}
    (r,) = report.by_id("DNS-004")
    assert f"real.{DOMAIN}" in r.summary


HOSTS_FAULTS = {
    "debian-127.0.1.1": (
        f"127.0.0.1 localhost\n127.0.1.1 {GOOD} nfs1\n",
        {"HOSTS-001": Severity.ERROR},
    ),
    "short-name-first": (
        f"127.0.0.1 localhost\n{GOOD_IP} nfs1 {GOOD}\n",
        {"HOSTS-003": Severity.WARNING},
    ),
    "duplicate": (
        f"127.0.0.1 localhost\n{GOOD_IP} {GOOD} nfs1\n{GOOD_IP} {GOOD}\n",
        {"HOSTS-004": Severity.WARNING},
    ),
    "disagrees-with-dns": (
        f"127.0.0.1 localhost\n127.0.0.99 {GOOD} nfs1\n",
        {"HOSTS-002": Severity.WARNING},
    ),
}


@pytest.mark.parametrize("fault", sorted(HOSTS_FAULTS))
def test_hosts_fault_found_by_right_check(env: Env, fault: str) -> None:
    text, expected = HOSTS_FAULTS[fault]
    report = run_checks(env.settings(hosts_file=env.hosts_file(fault, text)))
    assert problems(report) == expected


def test_keytab_missing_service_principal(env: Env) -> None:
    kt = env.tmp / "host-only.keytab"
    env.kdc.extract_keytab(f"host/{GOOD}@{env.kdc.realm}", kt)
    report = run_checks(env.settings(keytab=kt))
    assert problems(report) == {"KT-002": Severity.CRITICAL}
    (missing,) = [r for r in report.by_id("KT-002") if r.severity]
    assert missing.key == f"nfs/{GOOD}@{env.kdc.realm}"
    assert {"KT-006", "GSS-001", "EXP-002"} <= skipped(report)
    assert decide_exports(report, env.settings().exports)[0].enabled is False


def test_keytab_with_stale_kvno(env: Env) -> None:
    report = run_checks(env.settings(f"stale.{DOMAIN}"))
    assert problems(report) == {"KT-006": Severity.CRITICAL}
    (stale,) = [r for r in report.by_id("KT-006") if r.severity]
    assert stale.kw["expected"] == 2 and stale.kw["got"] == [1]
    assert "GSS-001" in skipped(report)
    decision = decide_exports(report, env.settings().exports)[0]
    assert not decision.enabled and "KT-006" in {r.id for r in decision.reasons}


def test_keytab_with_only_rc4(env: Env) -> None:
    report = run_checks(env.settings(f"rc4.{DOMAIN}"))
    assert problems(report) == {"KT-003": Severity.ERROR}
    (weak,) = [r for r in report.by_id("KT-003") if r.severity]
    assert "arcfour-hmac" in weak.summary and weak.key.startswith("nfs/")


def test_keytab_unreadable(env: Env) -> None:
    not_a_file = env.tmp / "keytab-dir"
    not_a_file.mkdir(exist_ok=True)
    report = run_checks(env.settings(keytab=not_a_file))
    assert problems(report) == {"KT-001": Severity.CRITICAL}
    assert "directory" in report.by_id("KT-001")[0].detail
    assert {"KT-002", "KT-003", "KDC-002", "KT-006", "GSS-001"} <= skipped(report)


def test_keytab_truncated(env: Env) -> None:
    kt = env.tmp / "truncated.keytab"
    kt.write_bytes(env.keytabs[GOOD].read_bytes()[:-7])
    os.chmod(kt, 0o600)
    report = run_checks(env.settings(keytab=kt))
    assert problems(report) == {"KT-001": Severity.CRITICAL}
    assert "truncated" in report.by_id("KT-001")[0].detail


def test_keytab_world_readable(env: Env) -> None:
    kt = env.tmp / "world.keytab"
    shutil.copyfile(env.keytabs[GOOD], kt)
    os.chmod(kt, 0o644)
    report = run_checks(env.settings(keytab=kt))
    assert problems(report) == {"KT-007": Severity.ERROR}
    assert "chmod 600" in report.by_id("KT-007")[0].remedy


def test_permitted_enctypes_without_aes(env: Env) -> None:
    conf = env.tmp / "krb5-no-aes.conf"
    conf.write_text(
        env.kdc.krb5_conf.read_text().replace(
            "[libdefaults]", "[libdefaults]\n  permitted_enctypes = rc4-hmac", 1
        )
    )
    report = run_checks(
        env.settings(krb5_conf=conf),
    )
    assert problems(report)["KRB-004"] == Severity.ERROR


def test_auth_sys_export_and_short_lease(env: Env) -> None:
    exports = [
        ExportSpec("/data", env.tmp / "data", ["krb5p"]),
        ExportSpec("/pub", env.tmp / "data", ["sys"]),
    ]
    report = run_checks(env.settings(exports=exports, lease_time=20, grace_time=25))
    assert problems(report) == {
        "EXP-003": Severity.WARNING,
        "LEASE-001": Severity.WARNING,
        "LEASE-002": Severity.WARNING,
    }
    assert [r.key for r in report.by_id("EXP-003")] == ["/pub"]


def test_every_peer_unreachable_finishes_and_says_so(env: Env, tmp_path: Path) -> None:
    """DNS, NTP, KDC and LDAP all silent: each check gives up on its own timeout and says why."""
    silent_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent_udp.bind(("127.0.0.1", 0))
    port = silent_udp.getsockname()[1]
    silent_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent_tcp.bind(("127.0.0.1", port))
    silent_tcp.listen(8)  # accepts connections (backlog) but never answers
    conf = tmp_path / "krb5.conf"
    conf.write_text(
        f"[libdefaults]\n default_realm = {env.kdc.realm}\n dns_lookup_kdc = false\n"
        f"[realms]\n {env.kdc.realm} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
    )
    s = env.settings(
        krb5_conf=conf,
        ntp_servers=[f"127.0.0.1:{port}"],
        dns_servers=[f"127.0.0.1:{port}"],
        ldap_uris=[f"ldap://127.0.0.1:{port}"],
        ldap_base_dn="dc=test,dc=example",
        peer_timeout=0.5,
        timeout=5.0,
    )
    try:
        report = run_checks(s)
    finally:
        silent_udp.close()
        silent_tcp.close()
    found = problems(report)
    assert found["TIME-003"] == Severity.WARNING
    assert (
        found["DNS-002"] == Severity.ERROR
        and "did not answer" in report.by_id("DNS-002")[0].summary
    )
    assert found["KDC-001"] == Severity.CRITICAL
    assert "no answer" in report.by_id("KDC-001")[0].detail
    assert {"KDC-002", "KT-006", "GSS-001", "TIME-004", "DNS-003", "EXP-002"} <= skipped(report)
    assert report.duration < 3 * s.timeout  # bounded by timeouts, not by the dead peers
    assert decide_exports(report, s.exports)[0].enabled is False


def test_cli_json_and_exit_codes(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    s = env.settings()
    argv = [
        "--hostname",
        GOOD,
        "--realm",
        env.kdc.realm,
        "--krb5-conf",
        str(env.kdc.krb5_conf),
        "--keytab",
        str(s.keytab),
        "--principal",
        s.principals[0],
        "--principal",
        s.principals[1],
        "--ntp-server",
        env.ntp.address,
        "--dns-server",
        env.dns.address,
        "--hosts-file",
        str(s.hosts_file),
        "--idmap-domain",
        DOMAIN,
        "--export",
        f"{tmp_path}:/data:sec=krb5p",
        "--state-dir",
        str(tmp_path),
        "--probe-user",
        "root",
    ]
    assert preflight_main([*argv, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "securenfs-preflight/1" and doc["summary"]["exit_code"] == 0
    assert {r["severity"] for r in doc["results"]} == {"ok"}
    assert {"id", "severity", "summary", "detail", "remedy", "duration"} <= set(doc["results"][0])
    # A short lease is a warning: exit 1, and 0 with --fail-on error (the ExecStartPre gate).
    assert preflight_main([*argv, "--lease-time", "20"]) == 1
    out = capsys.readouterr().out
    assert "WARNING   LEASE-001" in out and "-> Use 60-90 s" in out and "1 warning" in out
    assert "\033[" not in out  # no colour when not on a terminal
    assert preflight_main([*argv, "--lease-time", "20", "--fail-on", "error"]) == 0
    assert preflight_main([*argv, "--lease-time", "20", "--fail-on", "warning"]) == 2
    assert preflight_main([*argv, "--lease-time", "20", "--skip", "LEASE"]) == 0
    prom = tmp_path / "preflight.prom"
    assert (
        preflight_main(
            [*argv, "--only", "KT,GSS", "--format", "prometheus", "--output-file", str(prom)]
        )
        == 0
    )
    text = prom.read_text()
    assert f'securenfs_preflight_kdc_kvno{{principal="nfs/{GOOD}@{env.kdc.realm}"}} 1' in text
    assert 'securenfs_preflight_check_status{id="TIME-001"' not in text


def test_console_script_module_runs(env: Env) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "preflight.cli", "--list"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and "GSS-001" in proc.stdout


def test_keytab_cli_check_against_kdc(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from keytabs.cli import main as keytab_main

    stale = env.keytabs[f"stale.{DOMAIN}"]
    princ = [
        f"--principal=nfs/stale.{DOMAIN}@{env.kdc.realm}",
        f"--principal=host/stale.{DOMAIN}@{env.kdc.realm}",
    ]
    assert keytab_main(["check", str(stale), "--krb5-conf", str(env.kdc.krb5_conf), *princ]) == 2
    out = capsys.readouterr().out
    assert "keytab is stale" in out and "it holds kvno 1, the KDC issues 2" in out
    good = env.keytabs[GOOD]
    assert (
        keytab_main(
            ["check", str(good), "--krb5-conf", str(env.kdc.krb5_conf), f"--hostname={GOOD}"]
        )
        == 0
    )
    assert read_keytab(good).entries  # the check never modifies the file


def test_server_config_file_drives_the_run(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    s = env.settings()
    (tmp_path / "share").mkdir()
    cfg = tmp_path / "securenfs.toml"
    cfg.write_text(
        f"""
[server]
hostname = "{GOOD}"
state_dir = "{tmp_path}"
lease_time = 60
grace_time = 60

[kerberos]
keytab = "{s.keytab}"
principals = ["nfs/{GOOD}@{env.kdc.realm}", "host/{GOOD}@{env.kdc.realm}"]
krb5_conf = "{env.kdc.krb5_conf}"

[preflight]
ntp_servers = ["{env.ntp.address}"]
dns_servers = ["{env.dns.address}"]
hosts_file = "{s.hosts_file}"
timeout = 10.0
probe_user = "root"

[idmap]
domain = "{DOMAIN}"

[[exports]]
path = "{tmp_path / "share"}"
pseudo = "/share"
sec = ["krb5p", "sys"]
"""
    )
    assert preflight_main(["--config", str(cfg), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    problems = {
        (r["id"], r["severity"], r.get("key")) for r in doc["results"] if r["severity"] != "ok"
    }
    assert problems == {("EXP-003", "warning", "/share")}  # sys next to krb5p
    assert doc["host"]["realm"] == env.kdc.realm
    # A flag overrides the file; a broken file is a tool failure (exit 3), not a traceback.
    assert preflight_main(["--config", str(cfg), "--lease-time", "20", "--only", "LEASE-001"]) == 1
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    assert preflight_main(["--config", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "bad.toml" in err and "Traceback" not in err


def test_one_dead_ntp_server_among_good_ones(env: Env) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{silent.getsockname()[1]}"
        report = run_checks(env.settings(ntp_servers=[dead, env.ntp.address], peer_timeout=0.5))
    assert problems(report) == {"TIME-003": Severity.WARNING}
    assert "1 of 2" in report.by_id("TIME-003")[0].summary
    assert report.by_id("TIME-001")[0].status == "OK"
