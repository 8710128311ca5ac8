"""idmap against a real slapd holding 10,000 users and 1,000 groups, for every schema profile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from idmap import IdmapConfig, IdmapNotFound, IdmapUnavailable, SyncIdMapper, build_mapper
from idmap.records import CacheState
from tests.support.slapd import DOMAIN, GID_BASE, GROUPS, PEOPLE, REALM, SUFFIX, UID_BASE, Directory

PROFILES = ["rfc2307", "rfc2307bis", "ad"]


def ldap_config(uris: list[str], schema: str, **ldap_extra: Any) -> IdmapConfig:
    ldap_table: dict[str, Any] = {
        "uris": uris, "base": SUFFIX, "user_base": PEOPLE, "group_base": GROUPS,
        "schema": schema, "timeout": 2, "reconnect_min": 0.1, "reconnect_max": 0.5,
    }
    if schema == "ad":
        # OpenLDAP has no LDAP_MATCHING_RULE_IN_CHAIN; walk the nesting client-side.
        ldap_table["nesting"] = "client"
    ldap_table.update(ldap_extra)
    return IdmapConfig.from_mapping({
        "domain": DOMAIN, "local_realms": [REALM], "backends": ["ldap"], "ldap": ldap_table,
    })


@pytest.fixture(params=PROFILES)
def mapper(request: pytest.FixtureRequest, slapd_directory: Directory) -> Iterator[SyncIdMapper]:
    m = SyncIdMapper(build_mapper(ldap_config([slapd_directory.uri], request.param)))
    yield m
    m.close()


def test_owner_string_to_uid_and_back(mapper: SyncIdMapper) -> None:
    m = mapper.owner_to_uid(f"u01234@{DOMAIN}", allow_numeric=False)
    assert (m.id, m.name, m.source, m.cache) == (UID_BASE + 1234, f"u01234@{DOMAIN}", "ldap",
                                                 CacheState.MISS)
    assert mapper.owner_to_uid(f"u01234@{DOMAIN}", allow_numeric=False).cache is CacheState.HIT
    back = mapper.uid_to_owner(UID_BASE + 9999)
    assert (back.name, back.source) == (f"u09999@{DOMAIN}", "ldap")


def test_group_string_to_gid_and_back(mapper: SyncIdMapper) -> None:
    assert mapper.group_to_gid(f"g0042@{DOMAIN}", allow_numeric=False).id == GID_BASE + 42
    assert mapper.gid_to_group(GID_BASE + 999).name == f"g0999@{DOMAIN}"


def test_principal_gives_uid_primary_and_supplementary_gids(mapper: SyncIdMapper) -> None:
    ident = mapper.principal_to_identity(f"u01234@{REALM}")
    assert (ident.uid, ident.gid, ident.name, ident.source) == (
        UID_BASE + 1234, GID_BASE + 234, "u01234", "ldap")
    # u01234 is a member of g0235 ((i + 1) % 1000) besides its primary group g0234.
    assert set(ident.groups) == {GID_BASE + 234, GID_BASE + 235}


def test_principal_found_by_principal_attribute(mapper: SyncIdMapper) -> None:
    # bob's principal (krbPrincipalName / userPrincipalName) is robert@, not bob@.
    ident = mapper.principal_to_identity(f"robert@{REALM}")
    assert (ident.uid, ident.name) == (5002, "bob")


def test_principal_attribute_only_does_not_fall_back_to_short_name(
        slapd_directory: Directory) -> None:
    m = SyncIdMapper(build_mapper(ldap_config([slapd_directory.uri], "rfc2307",
                                              principal_lookup="attribute")))
    try:
        assert m.principal_to_identity(f"robert@{REALM}").uid == 5002
        assert m.principal_to_identity(f"bob@{REALM}").source == "anon"
    finally:
        m.close()


def test_foreign_realm_principal_is_anonymous_and_logged(
        mapper: SyncIdMapper, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="idmap"):
        ident = mapper.principal_to_identity("u00001@OTHER.TEST")
    assert (ident.uid, ident.gid, ident.source) == (65534, 65534, "anon")
    assert "OTHER.TEST" in (ident.reason or "")
    assert any("u00001@OTHER.TEST" in r.getMessage() and "local_realms" in r.getMessage()
               for r in caplog.records)


def test_unknown_names_and_ids(mapper: SyncIdMapper) -> None:
    with pytest.raises(IdmapNotFound):
        mapper.owner_to_uid(f"nosuchuser@{DOMAIN}", allow_numeric=False)
    with pytest.raises(IdmapNotFound):
        mapper.group_to_gid(f"nosuchgroup@{DOMAIN}", allow_numeric=False)
    assert mapper.principal_to_identity(f"nosuchuser@{REALM}").source == "anon"
    # An id without a name is sent as digits (RFC 8881 §5.9), not "nobody".
    assert mapper.uid_to_owner(4_000_000).name == "4000000"
    assert mapper.gid_to_group(4_000_000).name == "4000000"


@pytest.mark.parametrize("name,uid", [("st*r", 6001), ("pa(re)n", 6003),
                                      ("back\\slash", 6004)])
def test_metacharacter_names_match_only_themselves(mapper: SyncIdMapper, name: str,
                                                   uid: int) -> None:
    assert mapper.owner_to_uid(f"{name}@{DOMAIN}", allow_numeric=False).id == uid
    assert mapper.principal_to_identity(f"{name}@{REALM}").uid == uid


@pytest.mark.parametrize("name", ["*", "st*", "alice)(uid=*", "*)(|(uid=*", "alice\\2a",
                                  "a\x00lice", "alice*"])
def test_filter_injection_finds_nothing(mapper: SyncIdMapper, name: str) -> None:
    with pytest.raises(IdmapNotFound):
        mapper.owner_to_uid(f"{name}@{DOMAIN}", allow_numeric=False)
    with pytest.raises(IdmapNotFound):
        mapper.group_to_gid(f"{name}@{DOMAIN}", allow_numeric=False)


def test_group_named_with_star_is_exact(mapper: SyncIdMapper) -> None:
    assert mapper.group_to_gid(f"a*@{DOMAIN}", allow_numeric=False).id == 5500


@pytest.mark.parametrize("schema", ["rfc2307bis", "ad"])
def test_nested_groups_bounded_and_cycle_safe(slapd_directory: Directory, schema: str) -> None:
    m = SyncIdMapper(build_mapper(ldap_config([slapd_directory.uri], schema, nesting_level=2)))
    try:
        ident = m.principal_to_identity(f"alice@{REALM}")
    finally:
        m.close()
    # staff (direct) <- eng (1) <- all (2); deep is level 3; cyc-a <-> cyc-b is a cycle.
    assert set(ident.groups) == {5000, 5100, 5200, 5400, 5401}


def test_rfc2307_has_direct_memberships_only(slapd_directory: Directory) -> None:
    m = SyncIdMapper(build_mapper(ldap_config([slapd_directory.uri], "rfc2307")))
    try:
        assert set(m.principal_to_identity(f"alice@{REALM}").groups) == {5000, 5400}
    finally:
        m.close()


def test_concurrent_lookups_of_one_name_make_one_query(slapd_directory: Directory) -> None:
    mapper = build_mapper(ldap_config([slapd_directory.uri], "rfc2307"))

    async def burst() -> set[int]:
        results = await asyncio.gather(*(
            mapper.owner_to_uid(f"u00777@{DOMAIN}", allow_numeric=False) for _ in range(200)))
        return {r.id for r in results}

    try:
        assert asyncio.run(burst()) == {UID_BASE + 777}
        assert mapper.stats()["backend_lookups"] == 1
        assert mapper.stats()["backends"]["ldap"]["queries"] == 1
    finally:
        mapper.close()


def test_failover_to_the_second_server(slapd_directory: Directory) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"ldap://127.0.0.1:{s.getsockname()[1]}"
    m = SyncIdMapper(build_mapper(ldap_config([dead, slapd_directory.uri], "rfc2307")))
    try:
        assert m.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False).id == 5001
        assert m.stats()["backends"]["ldap"]["server"] == slapd_directory.uri
    finally:
        m.close()


def test_starttls_checks_the_ca(slapd_directory: Directory, tmp_path: Any) -> None:
    good = SyncIdMapper(build_mapper(ldap_config(
        [slapd_directory.uri], "rfc2307", tls="starttls", ca_file=slapd_directory.cafile)))
    try:
        assert good.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False).id == 5001
    finally:
        good.close()
    # A CA that did not sign the server's certificate: the server must not be used.
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "other CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    other = tmp_path / "other-ca.pem"
    other.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    bad = SyncIdMapper(build_mapper(ldap_config(
        [slapd_directory.uri], "rfc2307", tls="starttls", ca_file=str(other))))
    try:
        with pytest.raises(IdmapUnavailable):
            bad.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False)
    finally:
        bad.close()


def test_simple_bind_with_wrong_password_is_unavailable_not_unknown(
        slapd_directory: Directory, tmp_path: Any) -> None:
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    m = SyncIdMapper(build_mapper(ldap_config(
        [slapd_directory.uri], "rfc2307", bind="simple", bind_dn=f"cn=Manager,{SUFFIX}",
        bind_password_file=str(pw))))
    try:
        with pytest.raises(IdmapUnavailable) as err:
            m.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False)
        assert "Invalid credentials" in err.value.reason
    finally:
        m.close()
    pw.write_text("password\n")
    m = SyncIdMapper(build_mapper(ldap_config(
        [slapd_directory.uri], "rfc2307", bind="simple", bind_dn=f"cn=Manager,{SUFFIX}",
        bind_password_file=str(pw))))
    try:
        assert m.owner_to_uid(f"alice@{DOMAIN}", allow_numeric=False).id == 5001
    finally:
        m.close()


def test_machine_principal_policy(slapd_directory: Directory) -> None:
    cfg = ldap_config([slapd_directory.uri], "ad")
    m = SyncIdMapper(build_mapper(cfg))
    try:
        for p in (f"nfs/server.{DOMAIN}@{REALM}", f"host/x@{REALM}", f"root/x@{REALM}",
                  f"HOST$@{REALM}"):
            ident = m.principal_to_identity(p)
            assert (ident.uid, ident.source) == (65534, "machine"), p
    finally:
        m.close()
    cfg.machine.policy = type(cfg.machine.policy)("lookup")
    m = SyncIdMapper(build_mapper(cfg))
    try:
        # An AD computer account with POSIX attributes maps through the directory.
        assert m.principal_to_identity(f"HOST$@{REALM}").uid == 7001
    finally:
        m.close()
