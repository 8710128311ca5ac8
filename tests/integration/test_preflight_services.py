"""Preflight against a real slapd, KDC discovery through DNS SRV records, and a volatile state dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.registry import load_all
from preflight.result import Severity
from preflight.runner import run_checks
from preflight.settings import PreflightSettings
from tests.support.dnsserver import FakeDnsServer
from tests.support.kdc import KdcRealm
from tests.support.slapd import SUFFIX, Directory, start_directory

IDMAP_CHECKS = ["LDAP-001", "LDAP-006", "IDM-001", "IDM-002", "IDM-003"]


@pytest.fixture(scope="module")
def directory() -> Iterator[Directory]:
    d = start_directory(users=5, groups=2)
    try:
        yield d
    finally:
        d.close()


def run_only(ids: list[str], settings: PreflightSettings):  # type: ignore[no-untyped-def]
    return run_checks(settings, load_all().select(ids))


def idmap_settings(directory: Directory, **kw: object) -> PreflightSettings:
    s = PreflightSettings(
        hostname="nfs1.example.test",
        realm="EXAMPLE.TEST",
        idmap_domain="example.test",
        ldap_uris=[directory.uri],
        ldap_base_dn=SUFFIX,
        probe_user="alice",
        peer_timeout=2.0,
        timeout=10.0,
    )
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def states(report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r.id: r.status for r in report.results}


def test_ldap_idmap_good(directory: Directory) -> None:
    rep = run_only(IDMAP_CHECKS, idmap_settings(directory))
    assert states(rep) == dict.fromkeys(IDMAP_CHECKS, "OK")
    assert rep.by_id("IDM-003")[0].kw["uid"] == "5001"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"ldap_base_dn": "dc=nowhere,dc=test"}, {"LDAP-006": "ERROR", "IDM-003": "SKIPPED"}),
        ({"probe_user": "mallory"}, {"IDM-003": "ERROR"}),
        ({"idmap_domain": "corp.invalid"}, {"IDM-001": "WARNING"}),
        ({"idmap_domain": "localdomain"}, {"IDM-001": "CRITICAL"}),
        ({"local_realms": ["OTHER.TEST"]}, {"IDM-002": "ERROR"}),
    ],
)
def test_ldap_idmap_faults(
    directory: Directory, change: dict[str, object], expected: dict[str, str]
) -> None:
    rep = run_only(IDMAP_CHECKS, idmap_settings(directory, **change))
    assert {k: v for k, v in states(rep).items() if v != "OK"} == expected


def test_ldap_server_down_is_critical(directory: Directory, tmp_path: Path) -> None:
    from tests.support.ports import free_port

    s = idmap_settings(directory, ldap_uris=[f"ldap://127.0.0.1:{free_port()}"])
    rep = run_only(IDMAP_CHECKS, s)
    assert states(rep)["LDAP-001"] == "CRITICAL"
    assert states(rep)["LDAP-006"] == "SKIPPED" and states(rep)["IDM-003"] == "SKIPPED"


def test_kdc_found_through_srv_records(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    from preflight.krb5conf import load_krb5_conf

    realm = kdc_realm.realm
    port = int(load_krb5_conf(kdc_realm.krb5_conf).realm(realm)["kdc"][0].rsplit(":", 1)[1])
    conf = tmp_path / "krb5.conf"
    conf.write_text(f"[libdefaults]\n default_realm = {realm}\n")
    zone = {
        (f"_kerberos._udp.{realm}", "SRV"): [f"0 0 {port} localhost."],
        (f"_kerberos._tcp.{realm}", "SRV"): [f"0 0 {port} localhost."],
    }
    dns = FakeDnsServer(zone)
    try:
        s = PreflightSettings(
            hostname="nfs1.example.test",
            krb5_conf=conf,
            dns_servers=[dns.address],
            peer_timeout=1.0,
        )
        rep = run_only(["KRB-001", "KDC-001", "TIME-004"], s)
    finally:
        dns.close()
    assert states(rep) == {"KRB-001": "OK", "KDC-001": "OK", "TIME-004": "OK"}
    assert "DNS SRV" in rep.by_id("KDC-001")[0].summary
    # Without SRV records and without kdc = lines, there is no KDC to try.
    empty = FakeDnsServer({})
    try:
        s.dns_servers = [empty.address]
        rep = run_only(["KRB-001", "KDC-001"], s)
    finally:
        empty.close()
    assert rep.by_id("KDC-001")[0].severity == Severity.CRITICAL
    assert "no KDC known" in rep.by_id("KDC-001")[0].summary


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_state_dir_on_tmpfs_is_an_error(tmp_path: Path) -> None:
    import tempfile

    from preflight.checks.exports import fs_type

    if fs_type(Path("/dev/shm")) != "tmpfs":
        pytest.skip("/dev/shm is not tmpfs here")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        rep = run_only(["STATE-001"], PreflightSettings(state_dir=Path(d)))
    (r,) = rep.results
    assert r.severity == Severity.ERROR and "tmpfs" in r.summary
    rep = run_only(["STATE-001"], PreflightSettings(state_dir=tmp_path))
    assert rep.results[0].severity == Severity.OK
    rep = run_only(["STATE-001"], PreflightSettings(state_dir=tmp_path / "file" / "x"))
    assert rep.results[0].severity == Severity.CRITICAL
