"""[idmap] configuration: defaults, and errors that name the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from idmap.config import (
    BackendKind,
    IdmapConfig,
    IdmapConfigError,
    MachinePolicy,
    Nesting,
    SchemaProfile,
    TlsMode,
)

BASE: dict[str, Any] = {"domain": "Example.COM.", "local_realms": ["EXAMPLE.COM"]}


def parse(**extra: Any) -> IdmapConfig:
    return IdmapConfig.from_mapping({**BASE, **extra})


def error(**extra: Any) -> IdmapConfigError:
    with pytest.raises(IdmapConfigError) as err:
        parse(**extra)
    return err.value


def test_defaults_are_safe() -> None:
    cfg = parse()
    assert cfg.domain == "example.com"
    assert cfg.backends == (BackendKind.NSS,)
    assert (cfg.anon_uid, cfg.anon_gid) == (65534, 65534)
    assert cfg.machine.policy is MachinePolicy.ANON  # never root by default
    assert cfg.numeric.accept(kerberos=False) is True
    assert cfg.numeric.accept(kerberos=True) is False
    assert cfg.outage_delay == 30.0


def test_ldap_profiles_set_attributes_and_nesting() -> None:
    ad = parse(backends=["ldap"], ldap={"uris": ["ldaps://dc1"], "base": "dc=x", "schema": "ad"})
    assert ad.ldap is not None
    assert ad.ldap.schema is SchemaProfile.AD
    assert ad.ldap.attributes.user_name == "sAMAccountName"
    assert ad.ldap.attributes.principal == "userPrincipalName"
    assert ad.ldap.nesting is Nesting.IN_CHAIN
    assert ad.ldap.tls is TlsMode.LDAPS  # implied by the ldaps:// URI
    bis = parse(backends=["ldap"], ldap={"uris": ["ldap://a"], "base": "dc=x",
                                         "schema": "rfc2307bis",
                                         "attributes": {"principal": "krbCanonicalName"}})
    assert bis.ldap is not None and bis.ldap.attributes.principal == "krbCanonicalName"
    assert bis.ldap.attributes.member == "member" and bis.ldap.nesting is Nesting.CLIENT


@pytest.mark.parametrize("extra,key,fix_has", [
    ({"backends": ["ldpa"]}, "idmap.backends[0]", "ldap"),
    ({"bakends": ["ldap"]}, "idmap.bakends", "idmap.backends"),
    ({"backends": ["ldap"]}, "idmap.ldap", "uris"),
    ({"backends": ["ldap"], "ldap": {"base": "dc=x"}}, "idmap.ldap.uris", "ldap://"),
    ({"backends": ["ldap"], "ldap": {"uris": ["http://x"], "base": "dc=x"}},
     "idmap.ldap.uris[0]", "ldaps://"),
    ({"backends": ["ldap"], "ldap": {"uris": ["ldap://x"], "base": "dc=x", "timeout": "4"}},
     "idmap.ldap.timeout", "number"),
    ({"backends": ["ldap"], "ldap": {"uris": ["ldap://x"], "base": "dc=x", "bind": "simple"}},
     "idmap.ldap.bind_dn", "bind_dn"),
    ({"backends": ["ldap"], "ldap": {"uris": ["ldap://x"], "base": "dc=x", "schema": "ad2"}},
     "idmap.ldap.schema", "rfc2307bis"),
    ({"backends": ["ldap"], "ldap": {"uris": ["ldap://x"], "base": "dc=x",
                                     "schema": "rfc2307", "nesting": "client"}},
     "idmap.ldap.nesting", "rfc2307bis"),
    ({"backends": ["ldap"], "ldap": {"uris": ["ldap://x"], "base": "dc=x",
                                     "user_filter": "uid=x"}}, "idmap.ldap.user_filter", "("),
    ({"backends": ["static"]}, "idmap.static.path", "path"),
    ({"machine_principals": {"policy": "id"}}, "idmap.machine_principals.uid", "gid"),
    ({"machine_principals": {"policy": "id", "uid": 0, "gid": 0}},
     "idmap.machine_principals.uid", "root"),
    ({"anon_uid": True}, "idmap.anon_uid", "integer"),
    ({"anon_uid": -5}, "idmap.anon_uid", "range"),
    ({"cache": {"positive_tll": 5}}, "idmap.cache.positive_tll", "positive_ttl"),
    ({"domain": "user@example.com"}, "idmap.domain", "example.com"),
])
def test_bad_values_name_key_and_fix(extra: dict[str, Any], key: str, fix_has: str) -> None:
    err = error(**extra)
    assert err.key == key
    assert fix_has in err.fix
    assert err.message


def test_password_file_is_read(tmp_path: Any) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    cfg = parse(backends=["ldap"], ldap={"uris": ["ldap://x"], "base": "dc=x", "bind": "simple",
                                         "bind_dn": "cn=a", "bind_password_file": str(pw)})
    assert cfg.ldap is not None and cfg.ldap.bind_password == "s3cret"
    err = error(backends=["ldap"], ldap={"uris": ["ldap://x"], "base": "dc=x", "bind": "simple",
                                         "bind_dn": "cn=a",
                                         "bind_password_file": str(tmp_path / "missing")})
    assert err.key == "idmap.ldap.bind_password_file" and "cannot read" in err.message


def test_missing_domain_without_dns_domain_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.getfqdn", lambda: "localhost")
    with pytest.raises(IdmapConfigError) as err:
        IdmapConfig.from_mapping({"local_realms": ["X"]})
    assert err.value.key == "idmap.domain"
    monkeypatch.setattr("socket.getfqdn", lambda: "nfs1.corp.example.com")
    assert IdmapConfig.from_mapping({"local_realms": ["X"]}).domain == "corp.example.com"
