"""A stale or orphaned keytab against a real KDC: what KDC-002, KT-006 and `securenfs keytab
check` say, and the command they give.

Each test makes its own principals, extracts them into a keytab (k5test's ``ktadd
-norandkey``), then changes the KDC's side: ``cpw -randkey`` re-keys a principal (its kvno
goes up), ``+requires_preauth`` makes the KDC refuse to answer without proof of the key, and
``delprinc`` deletes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keytabs.asreq import KDC_ERR_C_PRINCIPAL_UNKNOWN, key_version
from keytabs.cli import main as keytab_main
from preflight.result import Severity
from preflight.runner import Report, run_checks
from preflight.settings import PreflightSettings
from tests.support.kdc import KdcRealm

pytestmark = pytest.mark.timeout(120)

ONLY = ("KRB-001", "KDC-001", "KT-001", "KT-002", "KDC-002", "KT-006", "GSS-001")


def make_host(kdc: KdcRealm, tmp_path: Path, host: str) -> tuple[Path, str, str]:
    """A keytab with nfs/ and host/ of ``host``, both at kvno 1."""
    kt = tmp_path / f"{host}.keytab"
    nfs, hst = f"nfs/{host}@{kdc.realm}", f"host/{host}@{kdc.realm}"
    for p in (nfs, hst):
        kdc.add_principal(p)
        kdc.extract_keytab(p, kt)
    return kt, nfs, hst


def preflight(kdc: KdcRealm, kt: Path, host: str) -> Report:
    from preflight.registry import load_all

    s = PreflightSettings(hostname=host, realm=kdc.realm, krb5_conf=kdc.krb5_conf, keytab=kt,
                          timeout=20.0, peer_timeout=2.0)
    return run_checks(s, [c for c in load_all().checks.values() if c.id in ONLY])


def only(report: Report, check_id: str) -> list[tuple[str, str]]:
    return [(r.status, r.summary) for r in report.by_id(check_id)]


def kdc_list(kdc: KdcRealm) -> list[tuple[str, int]]:
    from keytabs.cli import _kdcs

    return _kdcs(str(kdc.krb5_conf), kdc.realm)


def test_rekeyed_principals_are_a_stale_keytab_with_both_kvnos(
    kdc_realm: KdcRealm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = "rekeyed.stale.test"
    kt, nfs, hst = make_host(kdc_realm, tmp_path, host)
    for p in (nfs, hst):
        kdc_realm.k5.run_kadminl(["cpw", "-randkey", p])
    kdc_realm.k5.run_kadminl(["cpw", "-randkey", nfs])  # nfs/ is now at kvno 3
    report = preflight(kdc_realm, kt, host)
    # RFC 4120 §5.4.2: the AS-REP's enc-part is sealed in the client's key and names its kvno.
    (kdc002,) = report.by_id("KDC-002")
    assert kdc002.severity == Severity.CRITICAL and not kdc002.skipped
    assert kdc002.summary == f"no TGT from the keytab: the keytab is stale for {hst}: it holds kvno 1, the KDC issues 2"
    assert f"kadmin -q 'ktadd -norandkey -k {kt} {hst}'" in kdc002.remedy
    assert "integrity" in kdc002.detail.lower()
    (kt006,) = report.by_id("KT-006")
    assert (kt006.status, kt006.summary) == (
        "CRITICAL", f"the keytab is stale for {nfs}: it holds kvno 1, the KDC issues 3")
    assert kt006.kw["expected"] == 3 and kt006.kw["got"] == [1]
    for command in (f"kadmin -q 'ktadd -norandkey -k {kt} {nfs}'", f"ipa-getkeytab -r -p {nfs} -k {kt}",
                    "adcli update"):
        assert command in kt006.remedy
    assert "could not learn" not in kt006.summary
    assert [r.status for r in report.by_id("GSS-001")] == ["SKIPPED"]

    # The keytab command says the same, as CRITICAL, exit status 2.
    assert keytab_main(["check", str(kt), "--hostname", host, "--krb5-conf", str(kdc_realm.krb5_conf),
                        "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    stale = [f for f in doc["findings"] if f["key"] == nfs and "keytab is stale" in f["summary"]]
    assert [(f["severity"], f["summary"]) for f in stale] == [
        ("critical", f"the keytab is stale for {nfs}: it holds kvno 1, the KDC issues 3")]
    assert f"ktadd -norandkey -k {kt} {nfs}" in stale[0]["remedy"]

    # Re-exported with -norandkey (what the remedy says), everything passes again.
    kt.unlink()
    for p in (nfs, hst):
        kdc_realm.extract_keytab(p, kt)
    report = preflight(kdc_realm, kt, host)
    assert {r.id: r.status for r in report.results if r.status != "OK"} == {}


def test_rekeyed_service_with_a_working_host_key(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    """host/ still gets a TGT: the nfs/ ticket names the kvno the keytab lacks."""
    host = "half.stale.test"
    kt, nfs, _ = make_host(kdc_realm, tmp_path, host)
    kdc_realm.k5.run_kadminl(["cpw", "-randkey", nfs])
    report = preflight(kdc_realm, kt, host)
    assert only(report, "KDC-002")[0][0] == "OK"
    assert only(report, "KT-006") == [
        ("CRITICAL", f"the keytab is stale for {nfs}: it holds kvno 1, the KDC issues 2")]


def test_stale_key_of_a_principal_that_requires_preauth(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    """With pre-authentication required the KDC answers "Preauthentication failed" and
    does not tell its kvno; the keytab is still called stale."""
    host = "preauth.stale.test"
    kt, nfs, hst = make_host(kdc_realm, tmp_path, host)
    for p in (nfs, hst):
        kdc_realm.k5.run_kadminl(["modprinc", "+requires_preauth", p])
        kdc_realm.k5.run_kadminl(["cpw", "-randkey", p])
    report = preflight(kdc_realm, kt, host)
    (kdc002,) = report.by_id("KDC-002")
    assert "preauthentication failed" in kdc002.detail.lower()
    assert kdc002.summary.startswith(f"no TGT from the keytab: the keytab is stale for {hst}: it holds kvno 1, "
                                     "and the KDC no longer accepts that key (the KDC requires pre-authentication")
    (kt006,) = report.by_id("KT-006")
    assert kt006.severity == Severity.CRITICAL and kt006.summary.startswith(
        f"the keytab is stale for {nfs}: it holds kvno 1, and the KDC no longer accepts that key")
    assert f"ktadd -norandkey -k {kt} {nfs}" in kt006.remedy


def test_deleted_principals(kdc_realm: KdcRealm, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    host = "deleted.stale.test"
    kt, nfs, hst = make_host(kdc_realm, tmp_path, host)
    for p in (nfs, hst):
        kdc_realm.k5.run_kadminl(["delprinc", "-force", p])
    # RFC 4120 §7.5.9: KDC_ERR_C_PRINCIPAL_UNKNOWN.
    assert key_version(kdc_list(kdc_realm), nfs).error_code == KDC_ERR_C_PRINCIPAL_UNKNOWN
    report = preflight(kdc_realm, kt, host)
    assert only(report, "KDC-002") == [
        ("CRITICAL", f"no TGT from the keytab: {hst}: the principal was deleted or renamed in the KDC")]
    assert only(report, "KT-006") == [
        ("CRITICAL", f"{nfs}: the principal was deleted or renamed in the KDC")]
    assert "addprinc -randkey" in report.by_id("KT-006")[0].remedy
    assert keytab_main(["check", str(kt), "--hostname", host, "--krb5-conf", str(kdc_realm.krb5_conf)]) == 2
    out = capsys.readouterr().out
    assert f"CRITICAL  {nfs}: the principal was deleted or renamed in the KDC" in out


def test_keytab_check_takes_its_settings_from_the_config(
    kdc_realm: KdcRealm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = "config.stale.test"
    kt, nfs, hst = make_host(kdc_realm, tmp_path, host)
    conf = tmp_path / "securenfs.toml"
    conf.write_text(f'[server]\nhostname = "{host}"\n[kerberos]\nkeytab = "{kt}"\n'
                    f'principals = ["{nfs}", "{hst}"]\nkrb5_conf = "{kdc_realm.krb5_conf}"\n')
    assert keytab_main(["check", "--config", str(conf), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == str(kt)
    summaries = [f["summary"] for f in doc["findings"]]
    assert f"{nfs} kvno 1 matches the KDC" in summaries and f"{hst} kvno 1 matches the KDC" in summaries
    # A principal the config names but the keytab lacks is reported; the flag still wins.
    conf.write_text(conf.read_text().replace(f'"{hst}"', f'"nfs/other.stale.test@{kdc_realm.realm}"'))
    assert keytab_main(["check", "--config", str(conf)]) == 2
    assert f"keytab has no entry for nfs/other.stale.test@{kdc_realm.realm}" in capsys.readouterr().out
    assert keytab_main(["check", "--config", str(conf), "--principal", nfs]) == 0
    capsys.readouterr()
    # A broken config is a usage error naming the file once.
    conf.write_text("[kerberos]\nkeytabb = 1\n")
    assert keytab_main(["check", "--config", str(conf)]) == 3
    err = capsys.readouterr().err
    assert err.count(str(conf)) == 1 and "did you mean kerberos.keytab?" in err


def test_verbose_human_output_carries_the_kerberos_trace(
    kdc_realm: KdcRealm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from preflight.cli import main as preflight_main

    host = "verbose.stale.test"
    kt, nfs, hst = make_host(kdc_realm, tmp_path, host)
    for p in (nfs, hst):
        kdc_realm.k5.run_kadminl(["cpw", "-randkey", p])
    argv = ["--hostname", host, "--realm", kdc_realm.realm, "--krb5-conf", str(kdc_realm.krb5_conf),
            "--keytab", str(kt), "--only", ",".join(ONLY)]
    assert preflight_main(argv) == 2
    plain = capsys.readouterr().out
    assert f"CRITICAL  KDC-002    no TGT from the keytab: the keytab is stale for {hst}" in plain
    assert "KRB5_TRACE" not in plain and "   | " not in plain
    assert preflight_main([*argv, "--verbose"]) == 2
    lines = capsys.readouterr().out.splitlines()
    at = lines.index(next(ln for ln in lines if ln.startswith("CRITICAL  KDC-002")))
    detail = [ln[len(" " * 10 + "   | "):] for ln in lines[at + 1:] if ln.startswith(" " * 10 + "   | ")]
    assert detail[0].startswith(f"{hst}: ") and "integrity" in detail[0].lower()
    assert "KRB5_TRACE:" in detail
    # The trace is the Kerberos library's own account of the exchange with the KDC.
    assert any("AS-REQ" in ln or "Sending request" in ln for ln in detail)
