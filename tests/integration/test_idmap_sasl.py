"""A successful SASL/GSSAPI bind of the LDAP idmap backend: slapd with a Kerberos service key
of its own (ldap/<host>), the backend binding with the NFS server's keytab, a real KDC."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from idmap import IdmapConfig, SyncIdMapper, build_mapper
from idmap.backends.ldap import LdapBackend
from tests.support.kdc import KdcRealm
from tests.support.slapd import DOMAIN, REALM, SUFFIX, start_directory


def test_sasl_gssapi_bind_and_lookup(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    host = kdc_realm.hostname
    kdc_realm.add_principal(f"ldap/{host}")
    keytab = kdc_realm.extract_keytab(f"ldap/{host}", tmp_path / "ldap.keytab")
    saved = {k: os.environ.get(k) for k in ("KRB5_KTNAME", "KRB5_CONFIG")}
    # slapd (cyrus-sasl) reads its key and the realm from the environment it starts with.
    os.environ["KRB5_KTNAME"] = f"FILE:{keytab}"
    os.environ["KRB5_CONFIG"] = str(kdc_realm.krb5_conf)
    try:
        directory = start_directory(users=20, groups=5, sasl_host=host, sasl_realm=kdc_realm.realm)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        port = directory.uri.rsplit(":", 1)[1]
        cfg = IdmapConfig.from_mapping({
            "domain": DOMAIN, "local_realms": [REALM], "backends": ["ldap"],
            "ldap": {"uris": [f"ldap://{host}:{port}"], "base": SUFFIX, "bind": "sasl-gssapi",
                     "keytab": str(kdc_realm.service_keytab), "sasl_principal": kdc_realm.nfs_principal,
                     "timeout": 5}})
        # The backend's own connection is bound as the NFS service principal (RFC 4752: the
        # authorization identity slapd derives from the Kerberos name).
        assert cfg.ldap is not None
        backend = LdapBackend(cfg.ldap)
        with ThreadPoolExecutor(1) as pool:
            whoami = pool.submit(lambda: backend._connect(cfg.ldap.uris[0]).whoami_s()).result()  # type: ignore[union-attr]
        assert whoami == f"dn:uid=nfs/{host},cn={kdc_realm.realm.lower()},cn=gssapi,cn=auth", whoami
        m = SyncIdMapper(build_mapper(cfg))
        try:
            got = m.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False)
            assert (got.id, got.source) == (5001, "ldap")
        finally:
            m.close()
    finally:
        directory.close()
