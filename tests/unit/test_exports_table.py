"""Export table and pseudo tree built from [[exports]]; client rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from securenfs.config import ClientRule, ExportConfig
from securenfs.exports import PSEUDO_FSID, ROOT_NODE_ID, ExportError, ExportTable


def _dirs(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for n in names:
        p = tmp_path / n
        p.mkdir()
        out.append(p)
    return out


def test_pseudo_tree_leads_to_every_export(tmp_path: Path) -> None:
    a, b, c = _dirs(tmp_path, "a", "b", "c")
    t = ExportTable.from_config([
        ExportConfig(a, "/srv/home"), ExportConfig(b, "/srv/projects"), ExportConfig(c, "/scratch"),
    ])
    assert t.root.node_id == ROOT_NODE_ID and t.root.path == "/"
    assert sorted(t.root.children) == ["scratch", "srv"]
    srv = t.lookup(t.root, "srv")
    assert srv is not None and srv.export is None and sorted(srv.children) == ["home", "projects"]
    home = t.lookup(srv, "home")
    assert home is not None and home.export is not None and home.export.path == a
    assert home.parent is srv and t.junction(home.export) is home
    # every node can be found by its id, and ids are unique
    nodes = list(t.root.walk())
    assert len({n.node_id for n in nodes}) == len(nodes) == 5
    assert all(t.node(n.node_id) is n for n in nodes)
    assert all(n.node_id >= 3 for n in nodes if n is not t.root)
    assert t.node(12345) is None


def test_ids_and_fsids_are_stable_and_distinct(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path, "a", "b")
    cfg = [ExportConfig(a, "/one"), ExportConfig(b, "/two")]
    t1, t2 = ExportTable.from_config(cfg), ExportTable.from_config(list(reversed(cfg)))
    ids1 = {e.pseudo: e.export_id for e in t1.exports}
    ids2 = {e.pseudo: e.export_id for e in t2.exports}
    assert ids1 == ids2  # a restart (or reordering the file) keeps handles valid
    assert len(set(ids1.values())) == 2 and all(i > 1 for i in ids1.values())
    fsids = {e.fsid for e in t1.exports}
    assert len(fsids) == 2 and PSEUDO_FSID not in fsids
    assert t1.by_id(ids1["/one"]).path == a  # type: ignore[union-attr]
    assert t1.by_id(0) is None
    assert {n.node_id for n in t1.root.walk()} == {n.node_id for n in t2.root.walk()}


def test_export_at_root_alone_is_the_root(tmp_path: Path) -> None:
    (a,) = _dirs(tmp_path, "a")
    t = ExportTable.from_config([ExportConfig(a, "/")])
    assert t.root.export is not None and t.root.export.path == a


@pytest.mark.parametrize("setup, message", [
    ("missing", "does not exist"),
    ("file", "not a directory"),
    ("nested", "nested"),
    ("root_and_other", "only export"),
    ("duplicate", "used twice"),
    ("no_clients", "no client rule"),
])
def test_bad_tables_are_refused_with_a_reason(tmp_path: Path, setup: str, message: str) -> None:
    a, b = _dirs(tmp_path, "a", "b")
    (tmp_path / "f").write_text("x")
    cfgs = {
        "missing": [ExportConfig(tmp_path / "nope", "/x")],
        "file": [ExportConfig(tmp_path / "f", "/x")],
        "nested": [ExportConfig(a, "/x"), ExportConfig(b, "/x/y")],
        "root_and_other": [ExportConfig(a, "/"), ExportConfig(b, "/y")],
        "duplicate": [ExportConfig(a, "/x"), ExportConfig(b, "/x/")],
        "no_clients": [ExportConfig(a, "/x", clients=[])],
    }
    with pytest.raises(ExportError, match=message):
        ExportTable.from_config(cfgs[setup])


def test_export_path_symlink_is_resolved(tmp_path: Path) -> None:
    (a,) = _dirs(tmp_path, "a")
    (tmp_path / "link").symlink_to(a)
    t = ExportTable.from_config([ExportConfig(tmp_path / "link", "/x")])
    assert t.exports[0].path == a


def test_client_rules_first_match_wins(tmp_path: Path) -> None:
    (a,) = _dirs(tmp_path, "a")
    rules = [
        ClientRule(match="10.1.2.0/24", access="ro", squash="all", anonuid=7, anongid=8),
        ClientRule(match="10.0.0.0/8", access="rw", squash="none"),
        ClientRule(match="fd00::/8", access="rw", squash="root"),
    ]
    t = ExportTable.from_config([ExportConfig(a, "/x", clients=rules)])
    e = t.exports[0]
    first = t.access(e, "10.1.2.3")
    assert first is not None and first.read_only and first.squash == "all"
    assert (first.anonuid, first.anongid) == (7, 8)
    second = t.access(e, "10.9.9.9")
    assert second is not None and not second.read_only and second.squash == "none"
    assert t.access(e, "::ffff:10.9.9.9") == second  # v4-mapped peers match v4 rules
    assert t.access(e, "fd00::1") is not None
    assert t.access(e, "192.168.1.1") is None
    assert t.visible(t.root, "10.1.2.3") and not t.visible(t.root, "192.168.1.1")


def test_host_name_rules_use_confirmed_names_and_cache(tmp_path: Path) -> None:
    (a,) = _dirs(tmp_path, "a")
    calls: list[str] = []

    def resolver(ip: str) -> list[str]:
        calls.append(ip)
        return {"192.0.2.10": ["ws1.lab.example.com"], "192.0.2.11": []}.get(ip, [])

    rules = [ClientRule(match="*.lab.example.com", access="ro"), ClientRule(match="admin.example.com")]
    t = ExportTable.from_config([ExportConfig(a, "/x", clients=rules)], resolver=resolver)
    e = t.exports[0]
    acc = t.access(e, "192.0.2.10")
    assert acc is not None and acc.read_only and acc.rule == "*.lab.example.com"
    assert t.access(e, "192.0.2.11") is None  # no confirmed name: no host rule matches
    for _ in range(3):
        t.access(e, "192.0.2.10")
        t.access(e, "192.0.2.11")
    assert calls == ["192.0.2.10", "192.0.2.11"]  # positive and negative answers cached


def test_real_reverse_lookup_of_loopback(tmp_path: Path) -> None:
    (a,) = _dirs(tmp_path, "a")
    rules = [ClientRule(match="localhost")]
    t = ExportTable.from_config([ExportConfig(a, "/x", clients=rules)])
    # /etc/hosts maps 127.0.0.1 <-> localhost both ways on Debian
    assert t.access(t.exports[0], "127.0.0.1") is not None
    assert t.access(t.exports[0], "192.0.2.200") is None


def test_pseudo_readdir_pages_and_hides_unreachable_exports(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path, *[f"d{i}" for i in range(7)])
    cfg = [ExportConfig(d, f"/top/{d.name}") for d in dirs]
    cfg[0].clients = [ClientRule(match="10.0.0.0/8")]
    t = ExportTable.from_config(cfg)
    top = t.lookup(t.root, "top")
    assert top is not None
    seen: list[str] = []
    cookie = 0
    while True:
        page, eof = t.readdir(top, cookie, 3)
        assert len(page) <= 3 and all(n.node_id > 2 for n in page)
        seen += [n.name for n in page]
        if eof:
            break
        cookie = page[-1].node_id
    assert sorted(seen) == [d.name for d in dirs]
    page, eof = t.readdir(top, 0, 10, peer_ip="192.0.2.1")
    assert eof and sorted(n.name for n in page) == [d.name for d in dirs[1:]]
    assert [n.name for n in t.readdir(t.root, 0, 10)[0]] == ["top"]
