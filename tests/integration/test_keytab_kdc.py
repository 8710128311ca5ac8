"""The keytab KDC probe against a real KDC: kvnos, loopback, and a KDC that never answers."""

from __future__ import annotations

import socket
from pathlib import Path

from keytabs.kdcprobe import run_probe
from keytabs.keytab import read_keytab
from tests.support.kdc import KdcRealm


def test_probe_reads_kvno_and_loops_back(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    host = "probe.keytab.test"
    realm = kdc_realm.realm
    kt = tmp_path / "probe.keytab"
    for svc in ("nfs", "host"):
        kdc_realm.add_principal(f"{svc}/{host}@{realm}")
        kdc_realm.extract_keytab(f"{svc}/{host}@{realm}", kt)
    nfs = f"nfs/{host}@{realm}"
    res = run_probe(str(kt), [f"host/{host}@{realm}"], [nfs], str(kdc_realm.krb5_conf), 20)
    assert res.ok and res.tgt_principal == f"host/{host}@{realm}"
    sp = res.service(nfs)
    assert (
        sp is not None
        and sp.kvno == 1
        and sp.enctype in {e.enctype for e in read_keytab(kt).entries}
    )
    assert sp.accept_ok and sp.integ_ok and sp.conf_ok and sp.initiator == f"host/{host}@{realm}"
    assert res.kdc_time_offset is not None and abs(res.kdc_time_offset) < 2
    # Re-key on the KDC: the ticket now names kvno 2, and the old keytab cannot accept it.
    kdc_realm.k5.run_kadminl(["cpw", "-randkey", nfs])
    res = run_probe(str(kt), [f"host/{host}@{realm}"], [nfs], str(kdc_realm.krb5_conf), 20)
    sp = res.service(nfs)
    assert sp is not None and sp.kvno == 2 and not sp.accept_ok
    assert "kvno 2 not found in keytab" in sp.accept_error
    # The same stale key cannot get a TGT either; the error says why.
    res = run_probe(str(kt), [nfs], [nfs], str(kdc_realm.krb5_conf), 20)
    assert not res.tgt_principal and "integrity" in res.tgt_errors[nfs].lower()


def test_probe_gives_up_on_a_silent_kdc(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        conf = tmp_path / "krb5.conf"
        conf.write_text(
            f"[libdefaults]\n default_realm = {kdc_realm.realm}\n udp_preference_limit = 4096\n"
            f" kdc_timeout = 500\n max_retries = 1\n"
            f"[realms]\n {kdc_realm.realm} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
        )
        res = run_probe(
            str(kdc_realm.service_keytab),
            [kdc_realm.host_principal],
            [kdc_realm.nfs_principal],
            str(conf),
            3,
        )
    assert not res.tgt_principal
    assert res.error.startswith("Kerberos probe did not finish") or res.tgt_errors
