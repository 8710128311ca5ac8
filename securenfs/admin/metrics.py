"""Prometheus metrics (``[server] metrics_listen``), with prometheus_client.

One :class:`ServerMetrics` per server, with its own registry (never the library's global
default one: several servers may run in one process).  Two kinds of series:

* counted on the hot path: per NFSv4 operation a latency histogram (its ``_count`` is the
  operation count) and errors by status; per export bytes read and written; recovery store
  writes and idmap backend lookups as histograms.  The operation histograms are plain
  numbers in one object per operation (:class:`OpMetrics`: a bisect and two additions, no
  lock, no dict building; only the event-loop thread changes them), turned into the
  library's histogram family at scrape time; other label children are bound once and kept.
* read at scrape time from the live tables, through the same status document the admin
  socket answers (``AdminSocket.snapshot``): connections, clients, sessions, opens, locks,
  grace, the idmap cache, GSS contexts and failures, RPC calls by flavor and refusals by
  reason, preflight results, exports on or off.

The HTTP endpoint runs on the event loop (as the status socket does), so the collector
reads the protocol tables on the thread that changes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from securenfs.admin.socket import close_server

log = logging.getLogger("securenfs.admin")

#: Seconds: an inline GETATTR takes tens of microseconds, a WRITE with FILE_SYNC milliseconds.
OP_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
              0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Scrapes answered at once; a connection past them is closed at once (a scraper retries).
MAX_SCRAPERS = 16
#: The Prometheus text format 0.0.4, which generate_latest writes (every name here is a
#: legacy name, so no escaping applies).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class OpMetrics:
    """The series of one operation: a latency histogram kept as plain numbers (bucket counts
    and a sum, changed only on the event-loop thread, exposed at scrape time) and the error
    counter's children by status, bound on first use."""

    __slots__ = ("_errors", "_errors_of", "counts", "name", "sum")

    def __init__(self, name: str, errors: Counter):
        self.name = name
        #: Per bucket of OP_BUCKETS (not cumulative), the last one for +Inf.
        self.counts = [0] * (len(OP_BUCKETS) + 1)
        self.sum = 0.0
        self._errors = errors
        self._errors_of: dict[int, Any] = {}

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket ("le").
        self.counts[bisect_left(OP_BUCKETS, seconds)] += 1
        self.sum += seconds

    def error(self, status: int, status_name: Callable[[int], str]) -> None:
        child = self._errors_of.get(status)
        if child is None:
            # Statuses are a closed set (the server's own answers): bounded.
            child = self._errors_of[status] = self._errors.labels(self.name, "NFS4ERR_" + status_name(status))
        child.inc()


class ExportIo:
    __slots__ = ("read", "written")

    def __init__(self, read: Any, written: Any):
        self.read = read
        self.written = written


class ServerMetrics:
    def __init__(self, snapshot: Callable[[], Mapping[str, Any]], op_names: Mapping[int, str]):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._op_errors = Counter("securenfs_nfs4_operation_errors", "NFSv4.1 operations that ended in an "
                                  "error, by operation and status", ["op", "status"], registry=r)
        self.ops: dict[int, OpMetrics] = {n: OpMetrics(name, self._op_errors) for n, name in op_names.items()}
        self._export_bytes = Counter("securenfs_export_bytes", "Bytes read and written by READ and WRITE, "
                                     "by export", ["export", "direction"], registry=r)
        self._exports: dict[str, ExportIo] = {}
        self.store_write = Histogram("securenfs_recovery_store_write_seconds", "Durable writes of the "
                                     "recovery store (client records), by kind", ["kind"],
                                     buckets=STORE_BUCKETS, registry=r)
        self.idmap_backend = Histogram("securenfs_idmap_backend_seconds", "Lookups that went to the idmap "
                                       "backends (cache misses), time to answer", buckets=STORE_BUCKETS,
                                       registry=r)
        r.register(_OpCollector(self.ops))
        r.register(_LiveCollector(snapshot))
        self._server: asyncio.AbstractServer | None = None
        self.bound: list[tuple[str, int]] = []
        self._scrapers = 0

    def export_io(self, export: str) -> ExportIo:
        io = self._exports.get(export)
        if io is None:
            # One entry per export ever configured: bounded by the configuration.
            io = self._exports[export] = ExportIo(self._export_bytes.labels(export, "read"),
                                                  self._export_bytes.labels(export, "written"))
        return io

    def exposition(self) -> bytes:
        """The text format (0.0.4) of every series."""
        return generate_latest(self.registry)

    # -- the HTTP endpoint ---------------------------------------------------------------------
    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.bound = [s.getsockname()[:2] for s in self._server.sockets]

    async def stop(self) -> None:
        await close_server(self._server)
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._scrapers >= MAX_SCRAPERS:
            writer.close()
            return
        self._scrapers += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request = head.split(b"\r\n", 1)[0].split()
            if len(request) < 2 or request[0] not in (b"GET", b"HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"only GET /metrics\n"
            elif request[1].split(b"?", 1)[0] != b"/metrics":
                status, ctype, body = "404 Not Found", "text/plain", b"the metrics are at /metrics\n"
            else:
                status, ctype, body = "200 OK", CONTENT_TYPE, self.exposition()
            if request and request[0] == b"HEAD":
                payload = b""
            else:
                payload = body
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except Exception:  # a broken collector must not take the endpoint down
            log.exception("metrics scrape failed")
        finally:
            self._scrapers -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    return None


class _OpCollector:
    """The per-operation latency histograms, for the operations seen so far."""

    def __init__(self, ops: Mapping[int, OpMetrics]):
        self._ops = ops
        self._bounds = [repr(float(b)) for b in OP_BUCKETS] + ["+Inf"]

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        fam = HistogramMetricFamily("securenfs_nfs4_operation_seconds", "NFSv4.1 operations evaluated, by "
                                    "operation: time to evaluate (the _count series counts them)", labels=["op"])
        for om in self._ops.values():
            counts = list(om.counts)  # one consistent copy (the loop thread changes them)
            if not any(counts):
                continue
            cumulative = list(itertools.accumulate(counts))
            fam.add_metric([om.name], list(zip(self._bounds, cumulative, strict=True)), om.sum)
        yield fam


class _LiveCollector:
    """Series read from the status document at each scrape."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Any]]):
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return ()  # the series depend on what the server runs (GSS, idmap, recovery)

    def collect(self) -> Iterable[Metric]:
        st = self._snapshot()
        yield from _server_series(st.get("server"), st.get("rpc"))
        yield from _client_series(st.get("clients"))
        yield from _grace_series(st.get("grace"))
        yield from _idmap_series(st.get("idmap"))
        yield from _gss_series(st.get("gss"))
        yield from _preflight_series(st.get("preflight"), st.get("exports"))


def _gauge(name: str, doc: str, value: Any) -> Iterable[Metric]:
    v = _num(value)
    if v is not None:
        yield GaugeMetricFamily(name, doc, value=v)


def _server_series(srv: Any, rpc: Any) -> Iterable[Metric]:
    if isinstance(srv, dict):
        yield from _gauge("securenfs_connections", "Open client connections", srv.get("connections"))
        yield from _gauge("securenfs_rpc_calls_in_flight", "RPC calls being served", srv.get("calls_in_flight"))
        yield from _gauge("securenfs_uptime_seconds", "Seconds since the server started", srv.get("uptime_seconds"))
    if isinstance(rpc, dict):
        calls = CounterMetricFamily("securenfs_rpc_calls", "RPC calls accepted for authentication, by "
                                    "credential flavor", labels=["flavor"])
        for flavor, n in (rpc.get("calls_by_flavor") or {}).items():
            calls.add_metric([str(flavor)], float(n))
        yield calls
        refused = CounterMetricFamily("securenfs_rpc_auth_failures", "RPC calls refused with an "
                                      "authentication error, by reason (auth_stat)", labels=["reason"])
        for reason, n in (rpc.get("auth_failures") or {}).items():
            refused.add_metric([str(reason)], float(n))
        yield refused


_CLIENT_GAUGES = {
    "client_owners": ("securenfs_client_owners", "Client owners known (EXCHANGE_ID)"),
    "confirmed": ("securenfs_clients_confirmed", "Confirmed clients"),
    "unconfirmed": ("securenfs_clients_unconfirmed", "Unconfirmed clients"),
    "courtesy": ("securenfs_clients_courtesy", "Clients whose lease expired and who keep their state "
                 "(courteous server)"),
    "sessions": ("securenfs_sessions", "Sessions"),
    "bound_connections": ("securenfs_session_connections", "Connections bound to sessions"),
    "opens": ("securenfs_opens", "Open stateids (one per open-owner and file)"),
    "locks": ("securenfs_lock_stateids", "Lock stateids (one per lock-owner and file)"),
    "lock_ranges": ("securenfs_lock_ranges", "Byte ranges locked"),
    "revoked": ("securenfs_revoked_stateids", "Revoked stateids not yet freed by their clients"),
    "max_clients": ("securenfs_clients_max", "server.max_clients in effect"),
}


def _client_series(cl: Any) -> Iterable[Metric]:
    if not isinstance(cl, dict):
        return
    for key, (name, doc) in _CLIENT_GAUGES.items():
        yield from _gauge(name, doc, cl.get(key))
    for key in ("refused_exchange_id", "refused_create_session"):
        v = _num(cl.get(key))
        if v is not None:
            yield CounterMetricFamily(f"securenfs_{key}", f"{key.split('_', 1)[1].upper()} answered "
                                      "NFS4ERR_DELAY because a table was full", value=v)


def _grace_series(g: Any) -> Iterable[Metric]:
    if not isinstance(g, dict):
        return
    yield from _gauge("securenfs_grace_active", "1 while the grace period is enforced (reclaims only)",
                      g.get("state") == "in_grace")
    yield from _gauge("securenfs_grace_seconds_left", "Seconds of grace left", g.get("seconds_left"))
    yield from _gauge("securenfs_grace_clients_expected", "Clients that may reclaim", g.get("clients_expected"))
    yield from _gauge("securenfs_grace_clients_reclaimed", "Clients that sent RECLAIM_COMPLETE",
                      g.get("clients_reclaimed"))
    v = _num(g.get("reclaims"))
    if v is not None:
        yield CounterMetricFamily("securenfs_grace_reclaims", "Reclaims accepted", value=v)


def _idmap_series(im: Any) -> Iterable[Metric]:
    if not isinstance(im, dict):
        return
    cache = im.get("cache") or {}
    for key in ("hits", "negative_hits", "misses", "stale_served", "evictions"):
        v = _num(cache.get(key))
        if v is not None:
            yield CounterMetricFamily(f"securenfs_idmap_cache_{key}", f"idmap cache {key.replace('_', ' ')}",
                                      value=v)
    yield from _gauge("securenfs_idmap_cache_entries", "idmap cache entries", cache.get("entries"))
    v = _num(im.get("backend_lookups"))
    if v is not None:
        yield CounterMetricFamily("securenfs_idmap_backend_lookups", "Lookups sent to the backends", value=v)
    yield from _gauge("securenfs_idmap_outage", "1 while no idmap backend answers (cached answers are "
                      "served stale)", im.get("outage_seconds") is not None)
    yield from _gauge("securenfs_idmap_outage_seconds", "How long the current idmap outage has lasted",
                      im.get("outage_seconds") or 0)
    online = GaugeMetricFamily("securenfs_idmap_backend_online", "1 when the backend answers", labels=["backend"])
    for name, b in (im.get("backends") or {}).items():
        if isinstance(b, dict) and b.get("online") is not None:
            online.add_metric([str(name)], float(bool(b["online"])))
    yield online


def _gss_series(g: Any) -> Iterable[Metric]:
    if not isinstance(g, dict):
        return
    yield from _gauge("securenfs_gss_contexts", "RPCSEC_GSS contexts held", g.get("contexts"))
    stats = g.get("stats") or {}
    table = stats.get("table") or {}
    ctx = CounterMetricFamily("securenfs_gss_context_events", "RPCSEC_GSS context table events",
                              labels=["event"])
    for event in ("created", "established", "destroyed", "expired", "idle_reaped", "evicted_global",
                  "evicted_peer"):
        if _num(table.get(event)) is not None:
            ctx.add_metric([event], float(table[event]))
    yield ctx
    prot = stats.get("protection") or {}
    fails = CounterMetricFamily("securenfs_gss_failures", "RPCSEC_GSS per-message checks that failed, by "
                                "reason", labels=["reason"])
    for key, reason in (("bad_headers", "header_mic"), ("bad_bodies", "body_checksum")):
        if _num(prot.get(key)) is not None:
            fails.add_metric([reason], float(prot[key]))
    yield fails


_SEVERITY = {"OK": 0, "SKIPPED": 0, "INFO": 0, "WARNING": 1, "ERROR": 2, "CRITICAL": 3}


def _preflight_series(pre: Any, exports: Any) -> Iterable[Metric]:
    if isinstance(pre, dict):
        checks = GaugeMetricFamily("securenfs_preflight_check_severity", "Last result of each preflight "
                                   "check: 0 ok, 1 warning, 2 error, 3 critical", labels=["check", "status"])
        for cid, c in (pre.get("checks") or {}).items():
            status = str(c.get("status", "?"))
            checks.add_metric([str(cid), status], float(_SEVERITY.get(status, 2)))
        yield checks
        yield from _gauge("securenfs_kerberos_served", "1 while Kerberos flavors are served",
                          pre.get("kerberos") == "on")
    if isinstance(exports, list):
        on = GaugeMetricFamily("securenfs_export_enabled", "1 when the export serves at least one flavor",
                               labels=["export"])
        for e in exports:
            if isinstance(e, dict):
                on.add_metric([str(e.get("pseudo"))], float(bool(e.get("enabled"))))
        yield on
