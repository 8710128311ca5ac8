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
    assert rep.by_id("IDM-003")[0].kw["uid"] == 5001


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


def server_config(tmp_path: Path, ldap_table: str) -> PreflightSettings:
    """Preflight settings from a securenfs configuration file, as `serve` builds them."""
    from securenfs.config import load

    conf = tmp_path / "securenfs.toml"
    conf.write_text(f"""[idmap]\ndomain = "example.test"\nlocal_realms = ["EXAMPLE.TEST"]\nbackends = ["ldap"]\n
[idmap.ldap]\n{ldap_table}\n
[preflight]\nprobe_user = "alice"\n""")
    s = PreflightSettings.from_server_config(load(str(conf), required=True))
    s.hostname, s.realm, s.peer_timeout = "nfs1.example.test", "EXAMPLE.TEST", 2.0
    return s


def test_ldap_checks_use_the_idmap_table_with_simple_bind(directory: Directory, tmp_path: Path) -> None:
    """[idmap.ldap] as the ID mapper reads it: the key is `base`, and the bind is the mapper's."""
    pw = tmp_path / "pw"
    pw.write_text(directory.server.root_pw)  # type: ignore[attr-defined]
    table = (f'uris = ["{directory.uri}"]\nbase = "{SUFFIX}"\nbind = "simple"\n'
             f'bind_dn = "{directory.server.root_dn}"\nbind_password_file = "{pw}"')  # type: ignore[attr-defined]
    rep = run_only(IDMAP_CHECKS, server_config(tmp_path, table))
    assert states(rep) == dict.fromkeys(IDMAP_CHECKS, "OK")
    assert "simple bind" in rep.by_id("LDAP-006")[0].summary
    assert rep.by_id("IDM-003")[0].kw["uid"] == 5001

    pw.write_text("wrong")
    rep = run_only(IDMAP_CHECKS, server_config(tmp_path, table))
    (r,) = rep.by_id("LDAP-006")
    assert r.status == "ERROR" and "the simple bind was refused" in r.summary
    assert "Invalid credentials" in r.summary and "bind_password_file" in r.remedy
    assert states(rep)["IDM-003"] == "SKIPPED"


def test_ldap_checks_follow_the_idmap_schema_and_principal_attribute(directory: Directory, tmp_path: Path) -> None:
    """bob's principal is robert@EXAMPLE.TEST: only a lookup through the mapper's principal
    attribute (krbPrincipalName in the rfc2307 profile) finds him under that name."""
    table = f'uris = ["{directory.uri}"]\nbase = "{SUFFIX}"\nprincipal_lookup = "attribute"'
    s = server_config(tmp_path, table)
    s.probe_user = "robert@EXAMPLE.TEST"
    rep = run_only(IDMAP_CHECKS, s)
    assert states(rep)["IDM-003"] == "OK" and rep.by_id("IDM-003")[0].kw["uid"] == 5002


@pytest.fixture(scope="module")
def gssapi_directory(kdc_realm: KdcRealm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    """slapd accepting SASL/GSSAPI binds for ldap/<host> with its own keytab."""
    keytab = tmp_path_factory.mktemp("slapd-krb") / "ldap.keytab"
    kdc_realm.add_principal(f"ldap/{kdc_realm.hostname}")
    kdc_realm.extract_keytab(f"ldap/{kdc_realm.hostname}", keytab)
    mp = pytest.MonkeyPatch()
    mp.setenv("KRB5_KTNAME", f"FILE:{keytab}")  # slapd's acceptor keytab, read at its start
    try:
        d = start_directory(users=5, groups=2, sasl_host=kdc_realm.hostname)
    finally:
        mp.undo()
    try:
        yield d
    finally:
        d.close()


def test_ldap_checks_bind_with_sasl_gssapi_from_the_keytab(gssapi_directory: Directory, kdc_realm: KdcRealm,
                                                          tmp_path: Path) -> None:
    uri = gssapi_directory.uri.replace("127.0.0.1", kdc_realm.hostname)  # the host of ldap/<host>
    table = (f'uris = ["{uri}"]\nbase = "{SUFFIX}"\nbind = "sasl-gssapi"\n'
             f'keytab = "{kdc_realm.service_keytab}"\nsasl_principal = "{kdc_realm.nfs_principal}"')
    rep = run_only(IDMAP_CHECKS, server_config(tmp_path, table))
    assert states(rep) == dict.fromkeys(IDMAP_CHECKS, "OK"), [r.summary for r in rep.results]
    assert "sasl-gssapi bind" in rep.by_id("LDAP-006")[0].summary

    # A keytab without the configured principal: the bind cannot happen, and LDAP-006 says why.
    # (A principal no test ever used: a TGT once fetched stays in the lookup thread's ccache.)
    other = tmp_path / "other.keytab"
    kdc_realm.extract_keytab(f"ldap/{kdc_realm.hostname}", other)
    absent = kdc_realm.add_principal("preflight-" + tmp_path.name[-20:].replace("_", "-"))
    table = table.replace(str(kdc_realm.service_keytab), str(other)).replace(kdc_realm.nfs_principal, absent)
    rep = run_only(IDMAP_CHECKS, server_config(tmp_path, table))
    (r,) = rep.by_id("LDAP-006")
    assert r.status == "ERROR" and "cannot get Kerberos credentials from keytab" in r.summary
    assert "sasl_principal" in r.remedy


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
