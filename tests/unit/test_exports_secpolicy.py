"""One policy object: WRONGSEC decisions and SECINFO answers agree everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from securenfs.config import ExportConfig
from securenfs.exports import ExportTable, SecPolicy
from securenfs.rpc.auth import FLAVORS, PSEUDO_FLAVORS
from securenfs.rpc.constants import AuthFlavor
from securenfs.rpcsec_gss.flavors import KRB5_OID_DER


@pytest.fixture
def table(tmp_path: Path) -> ExportTable:
    for n in ("secret", "shared", "pub"):
        (tmp_path / n).mkdir()
    return ExportTable.from_config([
        ExportConfig(tmp_path / "secret", "/srv/secret", ["krb5p"]),
        ExportConfig(tmp_path / "shared", "/srv/shared", ["sys", "krb5"]),
        ExportConfig(tmp_path / "pub", "/pub", ["krb5i", "krb5p"]),
    ])


def _node(t: ExportTable, path: str):  # type: ignore[no-untyped-def]
    n = t.root
    for c in [c for c in path.split("/") if c]:
        n = t.lookup(n, c)
        assert n is not None
    return n


def test_exports_keep_their_order_and_nodes_take_the_union(table: ExportTable) -> None:
    p = SecPolicy(table)
    by = {e.pseudo: e for e in table.exports}
    assert p.flavors(by["/srv/secret"]) == ("krb5p",)
    assert p.flavors(by["/srv/shared"]) == ("sys", "krb5")  # the admin's order, not ours
    assert p.flavors(by["/pub"]) == ("krb5i", "krb5p")
    assert p.flavors(_node(table, "/srv")) == ("krb5p", "krb5", "sys")
    assert p.flavors(table.root) == ("krb5p", "krb5i", "krb5", "sys")
    # the junction node answers for the export mounted there
    assert p.flavors(_node(table, "/srv/secret")) == ("krb5p",)


def test_sys_cannot_reach_a_krb5p_export_but_can_walk_to_the_sys_one(table: ExportTable) -> None:
    p = SecPolicy(table)
    secret = _node(table, "/srv/secret").export
    assert secret is not None
    sys, krb5p = PSEUDO_FLAVORS["sys"], PSEUDO_FLAVORS["krb5p"]
    assert p.allows(table.root, sys) and p.allows(_node(table, "/srv"), sys)
    assert not p.allows(secret, sys)
    assert p.allows(secret, krb5p)
    assert not p.allows(secret, PSEUDO_FLAVORS["none"])
    assert not p.allows(table.root, 12345)
    assert "krb5p" in p.explain(secret, sys) and "sys" in p.explain(secret, sys)


def test_secinfo_and_wrongsec_agree_for_every_target_and_flavor(table: ExportTable) -> None:
    p = SecPolicy(table)
    targets = [*table.exports, *table.root.walk()]
    for target in targets:
        answer = p.secinfo(target)
        advertised = {e.name for e in answer}
        for name, number in PSEUDO_FLAVORS.items():
            assert p.allows(target, number) == (name in advertised), (target, name)
        assert [e.name for e in answer] == list(p.flavors(target))


def test_secinfo_triples(table: ExportTable) -> None:
    p = SecPolicy(table)
    shared = _node(table, "/srv/shared").export
    assert shared is not None
    sys_entry, krb5_entry = p.secinfo(shared)
    assert sys_entry.flavor == AuthFlavor.AUTH_SYS and sys_entry.oid is None
    assert krb5_entry.flavor == AuthFlavor.RPCSEC_GSS
    assert (krb5_entry.oid, krb5_entry.qop, krb5_entry.service) == (KRB5_OID_DER, 0, 1)
    (krb5p_entry,) = p.secinfo(_node(table, "/srv/secret").export)  # type: ignore[arg-type]
    assert krb5p_entry.service == 3


def test_unavailable_flavors_are_neither_advertised_nor_accepted(table: ExportTable) -> None:
    p = SecPolicy(table, available={"sys"})  # no keytab: no Kerberos
    secret = _node(table, "/srv/secret").export
    assert secret is not None
    assert p.secinfo(secret) == () and not p.allows(secret, PSEUDO_FLAVORS["krb5p"])
    assert p.flavors(table.root) == ("sys",)
    with pytest.raises(ValueError):
        SecPolicy(table, available={"krb6"})


def test_empty_table_root_accepts_usable_flavors(tmp_path: Path) -> None:
    p = SecPolicy(ExportTable.from_config([]))
    assert p.flavors(p.table.root) == FLAVORS
