"""SASL/GSSAPI bind preparation with the server's own keytab, against a real KDC and slapd."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from idmap import IdmapConfig, IdmapUnavailable, SyncIdMapper, build_mapper
from idmap.backends.ldap import LdapBackend
from tests.support.kdc import KdcRealm
from tests.support.slapd import DOMAIN, REALM, SUFFIX, Directory


def gssapi_config(uri: str, keytab: str, principal: str | None) -> IdmapConfig:
    ldap = {"uris": [uri], "base": SUFFIX, "bind": "sasl-gssapi", "keytab": keytab,
            "timeout": 2}
    if principal:
        ldap["sasl_principal"] = principal
    return IdmapConfig.from_mapping({"domain": DOMAIN, "local_realms": [REALM],
                                     "backends": ["ldap"], "ldap": ldap})


def test_tgt_from_keytab_lands_in_a_private_ccache(kdc_realm: KdcRealm) -> None:
    import gssapi

    principal = f"host/{kdc_realm.hostname}@{kdc_realm.realm}"
    cfg = gssapi_config("ldap://127.0.0.1:9", str(kdc_realm.service_keytab), principal)
    assert cfg.ldap is not None
    backend = LdapBackend(cfg.ldap)

    def in_lookup_thread() -> tuple[str, str, int]:
        # The ccache becomes the default of this thread only, as in the mapper's workers.
        ccache = backend.acquire_keytab_tgt()
        default = gssapi.Credentials(usage="initiate")
        return ccache, str(default.name), default.lifetime

    with ThreadPoolExecutor(1) as pool:
        ccache, default_name, lifetime = pool.submit(in_lookup_thread).result()
    assert ccache.startswith("MEMORY:")
    assert default_name == principal and lifetime > 0


def test_unusable_keytab_is_unavailable_with_the_reason(slapd_directory: Directory,
                                                        kdc_realm: KdcRealm,
                                                        tmp_path: Path) -> None:
    m = SyncIdMapper(build_mapper(gssapi_config(slapd_directory.uri,
                                                str(tmp_path / "missing.keytab"),
                                                f"nfs/x@{kdc_realm.realm}")))
    try:
        with pytest.raises(IdmapUnavailable) as err:
            m.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False)
        assert "missing.keytab" in err.value.reason
    finally:
        m.close()
