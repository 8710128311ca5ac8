"""Operating the server: Prometheus metrics over HTTP, the clients view, the locks on a file,
``securenfs expire`` and the revocation flags the client then sees (RFC 8881 §18.46.3), the
status text without Python reprs, and JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from securenfs.admin.socket import query, render
from securenfs.cli import main as cli_main
from securenfs.config import ListenAddress
from securenfs.logsetup import setup_logging
from securenfs.nfs4.xdr4 import SequenceRes
from securenfs.proto.constants import SeqStatus, Stat
from securenfs.server import admin_socket_path
from tests.support.nfsserver import NfsServer, mounted_client, status_of
from tests.support.ports import free_port


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[NfsServer]:
    srv = NfsServer(tmp_path, [("/a", ["sys"])])
    srv.cfg.server.metrics_listen = ListenAddress("127.0.0.1", free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def scrape(srv: NfsServer, path: str = "/metrics") -> str:
    ml = srv.cfg.server.metrics_listen
    assert ml is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{ml.port}{path}", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(r.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value, read with the Prometheus text parser."""
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


async def flags(c: Any) -> int:
    rep = await c.seq([])
    res = rep.results[0][1]
    assert isinstance(res, SequenceRes)
    return int(res.status_flags)


def ask(srv: NfsServer, request: str) -> dict[str, Any]:
    return query(admin_socket_path(srv.cfg), request=request)


def test_metrics_move_as_operations_run(metered: NfsServer) -> None:
    (metered.paths["/a"] / "f").write_bytes(b"0123456789")
    before = scrape(metered)
    n0 = sample(before, "securenfs_nfs4_operation_seconds_count", op="GETATTR") or 0.0

    async def main() -> None:
        c, root = await mounted_client(metered)
        n1 = sample(await asyncio.to_thread(scrape, metered), "securenfs_nfs4_operation_seconds_count",
                    op="GETATTR")
        assert n1 is not None and n1 > n0  # the mount sent GETATTRs
        for _ in range(5):
            await c.getattr(root)
        text = await asyncio.to_thread(scrape, metered)
        assert sample(text, "securenfs_nfs4_operation_seconds_count", op="GETATTR") == n1 + 5
        # A histogram: cumulative buckets ending at +Inf with the count.
        buckets = [(s.labels["le"], s.value) for fam in text_string_to_metric_families(text) for s in fam.samples
                   if s.name == "securenfs_nfs4_operation_seconds_bucket" and s.labels["op"] == "GETATTR"]
        assert buckets[-1] == ("+Inf", n1 + 5)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        # An error is counted by operation and status.
        assert await status_of(c.lookup_path("/a/missing")) == Stat.NOENT
        f = await c.open(root, "f", access=1)
        await c.read(f.fh, 0, 10, f.stateid)
        text = await asyncio.to_thread(scrape, metered)
        assert sample(text, "securenfs_nfs4_operation_errors_total", op="LOOKUP", status="NFS4ERR_NOENT") == 1
        assert sample(text, "securenfs_export_bytes_total", export="/a", direction="read") == 10
        assert sample(text, "securenfs_opens") == 1
        assert sample(text, "securenfs_sessions") == 1
        assert sample(text, "securenfs_connections") == 1
        assert (sample(text, "securenfs_rpc_calls_total", flavor="AUTH_SYS") or 0) > 5
        assert sample(text, "securenfs_export_enabled", export="/a") == 1
        # The first open wrote the client's record: one durable write observed.
        assert sample(text, "securenfs_recovery_store_write_seconds_count", kind="record") == 1
        await c.close_file(f)
        assert sample(await asyncio.to_thread(scrape, metered), "securenfs_opens") == 0

    run(main())


def test_metrics_endpoint_answers_only_metrics_and_keeps_serving(metered: NfsServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as ei:
        scrape(metered, "/other")
    assert ei.value.code == 404
    ml = metered.cfg.server.metrics_listen
    assert ml is not None
    # A request that is not HTTP at all: the connection closes, the endpoint still answers.
    import socket

    with socket.create_connection(("127.0.0.1", ml.port), timeout=5) as s:
        s.sendall(b"\x00\xff garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 405")
    assert sample(scrape(metered), "securenfs_uptime_seconds") is not None


def test_clients_view_locks_and_expire(metered: NfsServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = metered.paths["/a"] / "f"
    path.write_bytes(b"data")
    sock = str(admin_socket_path(metered.cfg))

    async def main() -> None:
        a, root = await mounted_client(metered)
        fa = await a.open(root, "f", access=3, deny=0)
        la = await a.lock(fa, 0, 10, lock_owner=b"owner-a")
        cid = f"{a.clientid:#018x}"
        answer = await asyncio.to_thread(ask, metered, "clients")
        (mine,) = [c for c in answer["clients"] if c["id"] == cid]
        assert mine["opens"] == 1 and mine["locks"] == 1 and mine["sessions"] == 1
        assert mine["principal"] == "sys:0" and mine["address"] == "127.0.0.1"
        assert mine["courtesy"] is False and 0 < mine["lease_left"] <= metered.cfg.server.lease_time
        # One client's state per file, with the path.
        shown = await asyncio.to_thread(ask, metered, f"client {cid}")
        kinds = {s["kind"]: s for s in shown["states"]}
        assert kinds["open"]["path"] == str(path) and kinds["open"]["access"] == "both"
        assert kinds["lock"]["ranges"] == [{"type": "write", "offset": 0, "length": 10}]
        assert kinds["lock"]["owner"] == "owner-a"
        # Who holds what on the file.
        held = await asyncio.to_thread(ask, metered, f"locks {path}")
        assert {(h["client"], h["kind"]) for h in held["holders"]} == {(cid, "open"), (cid, "lock")}
        # The table views, through the command line.
        assert await asyncio.to_thread(cli_main, ["clients", "--socket", sock]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0].split()[:3] == ["ID", "OWNER", "PRINCIPAL"]
        assert cid in out and "{" not in out
        assert await asyncio.to_thread(cli_main, ["locks", str(path), "--socket", sock]) == 0
        out = capsys.readouterr().out
        assert "write 0+10" in out and cid in out

        # Bad requests: a clear answer, and the server keeps serving.
        assert await asyncio.to_thread(cli_main, ["expire", "0x1234", "--socket", sock]) == 1
        assert "no client '0x1234'" in capsys.readouterr().err
        bad = await asyncio.to_thread(ask, metered, "locks /etc/passwd")
        assert bad == {"ok": False, "error": "/etc/passwd is in no export"}

        # expire: all of A's state goes at once.  A's lease had not run out, so the revocation
        # is administrative: RFC 8881 §18.46.3 "SEQ4_STATUS_ADMIN_STATE_REVOKED ... one or more
        # locks have been revoked without expiration of the lease period, due to
        # administrative action"; its stateids answer NFS4ERR_ADMIN_REVOKED (§15.1.5.1).
        assert await asyncio.to_thread(cli_main, ["expire", cid, "--socket", sock]) == 0
        assert "2 stateid(s) revoked (ADMIN)" in capsys.readouterr().out
        assert await flags(a) & SeqStatus.ADMIN_STATE_REVOKED
        assert await status_of(a.read(fa.fh, 0, 4, fa.stateid)) == Stat.ADMIN_REVOKED
        assert await a.test_stateids([fa.stateid, la]) == [Stat.ADMIN_REVOKED] * 2
        held = await asyncio.to_thread(ask, metered, f"locks {path}")
        assert held["holders"] == []
        # Another client takes a conflicting lock at once.
        b, broot = await mounted_client(metered)
        fb = await b.open(broot, "f", access=3)
        assert (await b.lockt(fb.fh, 0, 10)).status == 0
        for sid in (fa.stateid, la):
            await a.free_stateid(sid)
        assert await flags(a) == 0
        text = await asyncio.to_thread(scrape, metered)
        assert sample(text, "securenfs_revoked_stateids") == 0 and sample(text, "securenfs_opens") == 1

    run(main())


def test_status_text_has_no_python_reprs(metered: NfsServer) -> None:
    async def main() -> None:
        c, root = await mounted_client(metered)
        await c.getattr(root)
        text = await asyncio.to_thread(lambda: render(ask(metered, "status")))
        assert "clients:" in text and "rpc:" in text and "calls by flavor: AUTH_SYS" in text
        assert_no_reprs(text)

    run(main())
    # What the idmap provider answers (nested dicts) reads as lines too.
    text = render({"idmap": {"cache": {"hits": 8, "misses": 1}, "backend_lookups": 1, "outage_seconds": None,
                             "backends": {"ldap": {"online": True, "server": "ldap://a"}}}})
    assert "  cache: hits 8, misses 1\n" in text and "    ldap: online yes, server ldap://a\n" in text
    assert_no_reprs(text)


def assert_no_reprs(text: str) -> None:
    """No dict, list or string reprs anywhere (the exports' ``[on ]`` flag aside)."""
    body = re.sub(r"^  \[(on |OFF)\] ", "", text, flags=re.M)
    assert not re.search(r"[{}\[\]]|'[^']*'|\"|None|True|False", body), text


def test_json_log_lines_parse_with_the_same_fields() -> None:
    buf = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", buf, fmt="json")
        logging.getLogger("securenfs.test").warning("peer %s said \"%s\"\nand more", "127.0.0.1", "hi")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("securenfs.test").exception("failed")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(x) for x in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "WARNING" and first["logger"] == "securenfs.test"
    assert first["message"] == 'peer 127.0.0.1 said "hi"\nand more'
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", first["time"])
    assert second["message"] == "failed" and "ValueError: boom" in second["exception"]


def test_take_over_refused_without_etcd(metered: NfsServer, capsys: pytest.CaptureFixture[str]) -> None:
    sock = str(admin_socket_path(metered.cfg))
    assert cli_main(["take-over", "node-x", "--socket", sock]) == 1
    assert "needs the etcd recovery backend" in capsys.readouterr().err
    assert ask(metered, "status")["grace"]["state"] == "normal"


def test_take_over_a_fenced_node_from_the_command_line(etcd_cluster: Any, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from securenfs.recovery import GraceManager, Recovery
    from securenfs.recovery.etcd import EtcdRecoveryStore
    from securenfs.recovery.settings import RecoverySettings

    prefix = f"/securenfs-test/{uuid.uuid4().hex}"

    async def node_a_dies() -> None:
        # Node A records two clients, then dies; its membership stays live for a minute.
        store = EtcdRecoveryStore("node-a", etcd_cluster.endpoints, prefix=prefix, member_ttl=60, timeout=2,
                                  grace_time=30)
        a = Recovery(store, GraceManager(30), cluster=store, tick=0.05)
        await a.start(1)
        await a.client_confirmed(b"client-1", None)
        await a.client_confirmed(b"client-2", "krb5:nfs/c2@EXAMPLE.COM")
        await store.close()

    asyncio.run(node_a_dies())
    srv = NfsServer(tmp_path, [("/a", ["sys"])])
    srv.cfg.recovery = RecoverySettings(backend="etcd", node_id="node-b", etcd_endpoints=list(etcd_cluster.endpoints),
                                        etcd_prefix=prefix, member_ttl=2, etcd_timeout=2.0)
    srv.start()
    try:
        sock = str(admin_socket_path(srv.cfg))
        assert ask(srv, "status")["grace"]["clients_expected"] == 0  # A's clients are not B's (yet)
        assert cli_main(["take-over", "node-a", "--socket", sock]) == 0
        assert capsys.readouterr().out == ("took over node node-a: 2 client(s) may reclaim here during the "
                                           "grace period\n")
        grace = ask(srv, "status")["grace"]
        assert grace["state"] == "in_grace" and grace["clients_expected"] == 2
        assert grace["node"] == "node-b"
    finally:
        srv.stop()


class _Flavor:
    """A credential our client never sends: another flavor, or an AUTH_SYS body cut short."""

    def __init__(self, flavor: int, body: bytes):
        self.flavor, self.body = flavor, body

    def credential(self) -> tuple[int, bytes, Any]:
        return self.flavor, self.body, None

    def verifier(self, header: bytes, state: Any) -> tuple[int, bytes]:
        return 0, b""

    def wrap_args_parts(self, args: Any, state: Any) -> list[Any]:
        return list(args)

    def unwrap_results(self, reply: Any, state: Any) -> Any:
        return reply.body


def test_refused_calls_are_counted_by_reason(metered: NfsServer) -> None:
    from securenfs.client.rpc import RpcClient, RpcError
    from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4, AuthFlavor

    async def main() -> None:
        rpc = await RpcClient.connect("127.0.0.1", metered.port)
        # RFC 5531 §9: a flavor the server does not serve (AUTH_DH) and an AUTH_SYS body
        # that does not decode are both AUTH_BADCRED.
        for auth in (_Flavor(AuthFlavor.AUTH_DH, b""), _Flavor(AuthFlavor.AUTH_SYS, b"\0\0\0\1")):
            with pytest.raises(RpcError):
                await rpc.call(NFS_PROGRAM, NFS_V4, 0, auth=auth)  # type: ignore[arg-type]
        text = await asyncio.to_thread(scrape, metered)
        assert sample(text, "securenfs_rpc_auth_failures_total", reason="AUTH_BADCRED") == 2
        # The connection and the server keep serving.
        await rpc.call(NFS_PROGRAM, NFS_V4, 0)
        await rpc.close()
        c, root = await mounted_client(metered)
        await c.getattr(root)

    run(main())


def test_config_keys_metrics_listen_and_log_format() -> None:
    from securenfs.config import ConfigError, dump, parse

    cfg = parse({"server": {"metrics_listen": "127.0.0.1:9749", "log_format": "json"}})
    assert cfg.server.metrics_listen == ListenAddress("127.0.0.1", 9749) and cfg.server.log_format == "json"
    assert 'metrics_listen = "127.0.0.1:9749"' in dump(cfg)
    with pytest.raises(ConfigError) as ei:
        parse({"server": {"log_format": "xml"}})
    assert ei.value.key == "server.log_format" and 'log_format = "text" or "json"' in ei.value.fix
    with pytest.raises(ConfigError) as ei:
        parse({"server": {"metrics_listen": "localhost:http"}})
    assert ei.value.key == "server.metrics_listen"


def test_metrics_port_taken_refuses_to_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        srv = NfsServer(tmp_path, [("/a", ["sys"])])
        srv.cfg.server.metrics_listen = ListenAddress("127.0.0.1", taken.getsockname()[1])
        from securenfs.server import StartupError

        with pytest.raises(StartupError, match=r"for metrics: .*choose another server.metrics_listen"):
            srv.start()
        srv.stop()


def test_kerberos_and_idmap_series(tmp_path: Path, kdc_realm: Any, slapd_directory: Any) -> None:
    """Under krb5i with LDAP id mapping: GSS contexts and calls, idmap cache misses then
    hits, backend lookups timed, the backend online."""
    from securenfs.client.gss import GssClientAuth
    from securenfs.client.nfs4 import Nfs4Client
    from securenfs.client.rpc import RpcClient
    from securenfs.config import ClientRule
    from securenfs.proto.constants import Attr
    from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
    from securenfs.rpcsec_gss.constants import GssService
    from tests.support.slapd import DOMAIN, GROUPS, PEOPLE, SUFFIX

    srv = NfsServer(tmp_path, [("/home", ["krb5i"], [ClientRule(squash="root")])], kdc=kdc_realm)
    srv.cfg.server.metrics_listen = ListenAddress("127.0.0.1", free_port())
    srv.cfg.idmap_raw = {
        "domain": DOMAIN, "local_realms": [kdc_realm.realm], "backends": ["ldap"],
        "ldap": {"uris": [slapd_directory.uri], "base": SUFFIX, "user_base": PEOPLE, "group_base": GROUPS,
                 "schema": "rfc2307bis", "timeout": 2},
    }
    mine = srv.paths["/home"] / "alice.txt"
    mine.write_text("alice's\n")
    os.chown(mine, 5001, 5000)
    srv.start()
    try:
        async def main() -> None:
            rpc = await RpcClient.connect("127.0.0.1", srv.port)
            auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc_realm.hostname}",
                                                 ccache=str(kdc_realm.user_ccache("alice")),
                                                 service=GssService.INTEGRITY)
            c = Nfs4Client(rpc, auth)
            await c.mount("/home")
            fh = await c.lookup_path("/home/alice.txt")
            first = await c.getattr(fh, [Attr.OWNER])
            text = await asyncio.to_thread(scrape, srv)
            misses = sample(text, "securenfs_idmap_cache_misses_total")
            hits = sample(text, "securenfs_idmap_cache_hits_total")
            assert misses is not None and misses >= 1 and hits is not None
            assert (sample(text, "securenfs_idmap_backend_seconds_count") or 0) >= 1
            assert sample(text, "securenfs_idmap_backend_online", backend="ldap") == 1
            assert sample(text, "securenfs_idmap_outage") == 0
            assert sample(text, "securenfs_gss_contexts") == 1
            assert (sample(text, "securenfs_gss_context_events_total", event="established") or 0) >= 1
            assert (sample(text, "securenfs_rpc_calls_total", flavor="RPCSEC_GSS") or 0) >= 3
            # The same owner again: answered from the cache.
            assert await c.getattr(fh, [Attr.OWNER]) == first
            text = await asyncio.to_thread(scrape, srv)
            assert sample(text, "securenfs_idmap_cache_misses_total") == misses
            assert (sample(text, "securenfs_idmap_cache_hits_total") or 0) > hits
            await c.close()

        run(main())
    finally:
        srv.stop()


def _documented_metrics() -> set[str]:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    return set(re.findall(r"`(securenfs_[a-z0-9_]+)`", doc))


def _family(name: str) -> str:
    # The library adds ``_created`` (the start time) to counters and histograms.
    return re.sub(r"_(bucket|count|sum|total|created)$", "", name)


def test_docs_and_dashboard_name_only_series_the_server_has(metered: NfsServer) -> None:
    documented = {_family(n) for n in _documented_metrics()}

    async def main() -> None:
        c, root = await mounted_client(metered)
        await c.getattr(root)

    run(main())
    served = {_family(s.name) for fam in text_string_to_metric_families(scrape(metered)) for s in fam.samples}
    assert served - documented == set()
    dashboard = (Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "securenfs.json").read_text()
    used = {_family(n) for n in re.findall(r"securenfs_[a-z0-9_]+", dashboard)}
    assert used - documented == set()


def test_metrics_connections_are_bounded(metered: NfsServer) -> None:
    import socket

    from securenfs.admin.metrics import MAX_SCRAPERS

    ml = metered.cfg.server.metrics_listen
    assert ml is not None
    # Connections that send nothing hold their place (up to a 10 s timeout each)...
    idle = [socket.create_connection(("127.0.0.1", ml.port), timeout=5) for _ in range(MAX_SCRAPERS)]
    extra = socket.create_connection(("127.0.0.1", ml.port), timeout=5)
    try:
        extra.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        try:
            assert extra.recv(100) == b""  # ...and one more is closed at once, unanswered
        except ConnectionResetError:
            pass
    finally:
        extra.close()
        for s in idle:
            s.close()
    # Once they are gone, scrapes are answered again (the server notices the closes first).
    for _ in range(50):
        try:
            assert sample(scrape(metered), "securenfs_uptime_seconds") is not None
            return
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.1)
    raise AssertionError("the metrics endpoint did not answer after the idle connections closed")
