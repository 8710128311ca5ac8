"""Wiring: builds the server's parts from the configuration and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from securenfs import __version__, gate
from securenfs.admin import ops as ops_admin
from securenfs.admin.socket import AdminSocket
from securenfs.config import KERBEROS_FLAVORS, Config, ConfigError
from securenfs.identity import IdentityError, ServerIdentity, load_identity
from securenfs.nfs4.program import Nfs4Program
from securenfs.rpc.constants import AuthFlavor
from securenfs.rpc.transport import RpcServer, TransportLimits

if TYPE_CHECKING:
    from securenfs.admin.metrics import ServerMetrics
    from securenfs.recovery.service import Recovery
    from securenfs.rpcsec_gss.handler import RpcsecGssHandler

log = logging.getLogger("securenfs.server")


class StartupError(Exception):
    """The server cannot start; the message says why and what to do."""


def prepare_state_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StartupError(f"state directory {path}: cannot create it ({exc.strerror}); "
                           "create it or set server.state_dir / --state-dir to a writable directory") from None
    probe = path / ".write-test"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StartupError(f"state directory {path}: not writable ({exc.strerror}); "
                           "fix its permissions or choose another with --state-dir") from None


class Server:
    """The running server: transport, programs and their state."""

    def __init__(self, cfg: Config, *, resolver: Callable[[str], list[str]] | None = None):
        self.cfg = cfg
        #: Peer address -> confirmed host names for host-name client rules (None: the system's).
        self.resolver = resolver
        self.rpc = RpcServer(TransportLimits(max_record_size=cfg.server.max_record_size))
        self.executor = ThreadPoolExecutor(max_workers=cfg.server.threads, thread_name_prefix="securenfs-io")
        self.nfs = Nfs4Program()
        self.rpc.add_program(self.nfs)
        self.bound: list[tuple[str, int]] = []
        self.identity: ServerIdentity | None = None
        self._stop = asyncio.Event()
        self.gss: RpcsecGssHandler | None = None
        self.started_at = time.time()
        self.admin = AdminSocket(admin_socket_path(cfg))
        self.admin.add_provider("server", self._status_server)
        self.admin.add_provider("exports", self._status_exports)
        #: The start-up gate (securenfs/gate.py): "off", "running" or "done"; while it runs
        #: every Kerberos flavor is held back, afterwards the exports it narrowed are in
        #: ``gate_overrides`` (pseudo -> flavors served) with their reasons.
        self.gate_state = "off"
        self.gate_overrides: dict[str, list[str]] = {}
        self.disabled_exports: dict[str, list[str]] = {}
        self._gate_task: asyncio.Task[None] | None = None
        #: the last preflight run (None before the first), and whether Kerberos has served
        #: since start (then only a broken keytab switches it off, see preflight.gate)
        self.gate_last: gate.GateOutcome | None = None
        self.kerberos_served = False
        self._gate_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[dict[str, object]]] = set()
        self._reload_lock = asyncio.Lock()
        #: Re-reads the configuration for a reload (``securenfs serve`` sets it: the same
        #: file and command-line options); None: a reload only re-runs the preflight gate.
        self.load_config: Callable[[], Config] | None = None
        self.admin.add_command("reload", self.reload)
        self.admin.add_provider("preflight", self._status_preflight)
        self.admin.add_provider("clients", lambda: self.nfs.service.client_stats() if self.nfs.service else {})
        self.admin.add_provider("rpc", self.rpc.stats)
        self.owners: object | None = None
        self.recovery: Recovery | None = None
        #: Prometheus series (``server.metrics_listen``); None while off.
        self.metrics: ServerMetrics | None = None
        ops_admin.register(self)

    def hold_for_preflight(self) -> None:
        """Start with every Kerberos flavor held back and run the preflight once listening
        (``securenfs serve`` does this; an in-process Server serves its config as given)."""
        self.gate_state = "running"
        self.gate_overrides = gate.held_back(self.cfg)
        self.rpc.held_flavors[AuthFlavor.RPCSEC_GSS] = (
            "Kerberos (RPCSEC_GSS) is held back while the start-up preflight runs; "
            "it comes on when its checks pass (see `securenfs status`)")

    async def start(self) -> None:
        prepare_state_dir(self.cfg.server.state_dir)
        try:
            self.identity = load_identity(self.cfg.server.state_dir, self.cfg.server.server_owner,
                                          self.cfg.server.server_scope)
        except (IdentityError, OSError) as exc:
            raise StartupError(f"server identity: {exc}") from None
        log.info("server_owner=%r server_scope=%r boot epoch %d", self.identity.server_owner,
                 self.identity.server_scope, self.identity.boot_epoch)
        loop = asyncio.get_running_loop()
        loop.set_default_executor(self.executor)
        for w in self.cfg.warnings:
            log.warning("config: %s", w)
        if self.cfg.uses_kerberos and self.gate_state != "running":
            # No preflight, or a strict preflight that already passed: serve Kerberos now.
            self.enable_gss()
            self.kerberos_served = True
        self._build_nfs4()
        await self._start_recovery()
        try:
            await self._listen()
        except StartupError:
            await self._stop_recovery()  # release the store (its lock) for the next attempt
            raise
        if self.gss is not None:
            self.admin.add_provider("gss", self._status_gss)
        if self.cfg.server.metrics_listen is not None:
            await self._start_metrics(self.cfg.server.metrics_listen.host, self.cfg.server.metrics_listen.port)
        log.info("serving NFSv4.1 on %s (%d export(s))",
                 ", ".join(f"{h}:{p}" for h, p in self.bound), len(self.cfg.exports))
        if self.gate_state == "running":
            log.info("preflight running: Kerberos flavors are held back until their checks pass; "
                     "AUTH_SYS exports serve now")
        if self.gate_state != "off":
            self._gate_task = asyncio.create_task(self._gate_loop(run_now=self.gate_state == "running"))

    async def reload(self) -> dict[str, object]:
        """SIGHUP and ``securenfs reload``: re-read the configuration (when the server was
        started from one, see ``load_config``), apply what can change live, then run the
        preflight gate now (when it is on).  A configuration that does not load or whose
        exports cannot be served changes nothing; the answer says why."""
        answer: dict[str, object] = {"ok": True, "warnings": []}
        if self.load_config is not None:
            async with self._reload_lock:
                try:
                    answer.update(self._reload_exports(self.load_config()))
                except (ConfigError, StartupError) as exc:
                    log.error("reload refused, nothing changed: %s", exc)
                    return {"ok": False, "error": str(exc)}
                except Exception as exc:  # an unforeseen failure must not take the server down
                    log.exception("reload refused, nothing changed")
                    return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if self.gate_state != "off":
            await self.run_gate()
        answer.update(exports=self._status_exports(), preflight=self._status_preflight())
        return answer

    def _reload_exports(self, new: Config) -> dict[str, object]:
        """Serve ``new``'s exports from the next request: one new export table and SecPolicy,
        swapped together (see Namespace.replace_exports).  Raises StartupError, changing
        nothing, when they cannot be served."""
        from securenfs.exports.secpolicy import SecPolicy
        from securenfs.exports.table import ExportError, ExportTable
        from securenfs.reload import export_changes, merge

        svc = self.nfs.service
        assert svc is not None
        merged, warnings = merge(self.cfg, new)
        if merged.uses_kerberos and self.gss is None and self.gate_state == "off":
            raise StartupError("exports: the new configuration adds Kerberos flavors, but this server was "
                               "started without Kerberos; restart it to serve them")
        try:
            table = ExportTable.from_config(merged.exports)
        except ExportError as exc:
            raise StartupError(f"exports: {exc}") from None
        # Kept exports keep the gate's current narrowing until the run below; new Kerberos
        # exports wait for it while Kerberos is held back.
        overrides = {p: f for p, f in self.gate_overrides.items() if any(e.pseudo == p for e in merged.exports)}
        last = self.gate_last
        if self.gss is None or not self.kerberos_served or (last is not None and not last.serves_kerberos(self.cfg)):
            overrides = {**gate.held_back(merged), **overrides}
        policy = SecPolicy(table, svc.ns.policy._available, overrides, self.disabled_exports)
        try:
            svc.ns.replace_exports(table, policy)
        except OSError as exc:
            raise StartupError(f"exports: {exc}") from None
        svc.index_client_rules()
        changes = export_changes(self.cfg.exports, merged.exports)
        self.cfg, self.gate_overrides = merged, overrides
        for w in warnings:
            log.warning("reload: %s", w)
        log.info("reload: exports added %s, removed %s, changed %s", changes["added"] or "none",
                 changes["removed"] or "none", changes["changed"] or "none")
        return {"warnings": warnings, **changes}

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading")
        task = asyncio.create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _gate_loop(self, run_now: bool) -> None:
        """The live gate: a run at start (unless --strict just ran one), then every
        ``preflight.interval`` seconds (0: only on SIGHUP and ``securenfs reload``)."""
        if run_now:
            await self.run_gate()
        while self.cfg.preflight.interval:
            await asyncio.sleep(self.cfg.preflight.interval)
            await self.run_gate()

    async def run_gate(self) -> gate.GateOutcome:
        """Run the preflight off the event loop, then serve the Kerberos flavors that passed."""
        async with self._gate_lock:
            loop = asyncio.get_running_loop()
            served = self.kerberos_served
            try:
                out = await loop.run_in_executor(None, gate.decide, self.cfg, served)
            except Exception as exc:  # the preflight tool itself failed: change nothing, say why
                log.exception("preflight failed to run")
                held = dict(self.gate_overrides) if served else gate.held_back(self.cfg)
                reason = f"the preflight could not run: {exc}"
                out = gate.GateOutcome(held, {p: [reason] for p in held},
                                       self.gate_last.checks if self.gate_last else {})
            self.apply_gate(out)
            return out

    def apply_gate(self, out: gate.GateOutcome) -> None:
        """Serve what ``out`` allows: one new SecPolicy, swapped in one assignment."""
        gate.log_outcome(self.cfg, out, self.gate_last)
        if out.serves_kerberos(self.cfg) and self.gss is None:
            try:
                self.enable_gss()
                self.admin.add_provider("gss", self._status_gss)
            except StartupError as exc:
                log.error("%s; Kerberos flavors stay off", exc)
                held = gate.held_back(self.cfg)
                out = gate.GateOutcome({**held, **{p: f for p, f in out.overrides.items() if p not in held}},
                                       {p: out.reasons.get(p, []) + [str(exc)] for p in held})
        svc = self.nfs.service
        if svc is not None:
            from securenfs.exports.secpolicy import SecPolicy

            ns = svc.ns
            # One new immutable policy object, swapped in one assignment: SECINFO and
            # WRONGSEC keep answering from the same object (RFC 8881 §2.6.3.1).
            ns.policy = SecPolicy(ns.table, ns.policy._available, out.overrides, out.reasons)
        changed = self.gate_last is None or self.gate_last.overrides != out.overrides
        self.gate_overrides = out.overrides
        self.disabled_exports = out.reasons
        self.gate_state = "done"
        self.gate_last = out
        if self.gss is not None and out.serves_kerberos(self.cfg):
            self.kerberos_served = True
        if self.gss is None:
            reasons = dict.fromkeys(r for rs in out.reasons.values() for r in rs)
            self.rpc.held_flavors[AuthFlavor.RPCSEC_GSS] = (
                "Kerberos (RPCSEC_GSS) is held back because the preflight failed: " + "; ".join(reasons))
        if changed:
            log.info("preflight finished: %s", "every export serves all its flavors" if not out.overrides else
                     f"{len(out.overrides)} export(s) narrowed (see above and `securenfs status`)")

    def enable_gss(self) -> RpcsecGssHandler:
        """Serve RPCSEC_GSS (RFC 2203) with acceptor keys from ``kerberos.keytab``."""
        from securenfs.rpcsec_gss.acceptor import KeytabProblem
        from securenfs.rpcsec_gss.handler import RpcsecGssHandler

        try:
            handler = RpcsecGssHandler.from_config(self.cfg.kerberos, self.cfg.server.hostname, self.executor)
        except KeytabProblem as exc:
            raise StartupError(f"Kerberos exports cannot be served: {exc}") from None
        handler.start()
        self.rpc.set_flavor(AuthFlavor.RPCSEC_GSS, handler)
        self.rpc.held_flavors.pop(AuthFlavor.RPCSEC_GSS, None)
        self.gss = handler
        return handler

    def _build_nfs4(self) -> None:
        """The NFSv4.1 service: export table, security policy, handles, protocol state."""
        from securenfs.nfs4.owners import build_owner_mapper
        from securenfs.nfs4.wiring import ExportError, build_service
        from securenfs.vfs.handles import HandleKeyError

        assert self.identity is not None
        try:
            owners = build_owner_mapper(self.cfg.idmap_raw)
        except Exception as exc:  # idmap.IdmapConfigError; parse() normally caught it already
            raise StartupError(f"idmap: {exc}") from None
        self.owners = owners
        try:
            self.nfs.service = build_service(self.cfg, self.identity.server_owner, self.identity.server_scope,
                                             self.executor, kerberos=self.gss is not None or self.gate_state != "off",
                                             owners=owners, overrides=self.gate_overrides,
                                             peerlog=self.rpc.peerlog, resolver=self.resolver)
        except ExportError as exc:
            raise StartupError(f"exports: {exc}") from None
        except HandleKeyError as exc:
            raise StartupError(f"file handles: {exc}") from None
        mapper = getattr(owners, "mapper", None)
        if mapper is not None:
            self.admin.add_provider("idmap", mapper.stats)

    async def _listen(self) -> None:
        for addr in self.cfg.server.listen:
            try:
                self.bound += await self.rpc.listen(addr.host, addr.port)
            except OSError as exc:
                raise StartupError(f"cannot listen on {addr}: {exc.strerror}; "
                                   "is another NFS server running? choose another address with --listen") from None
        try:
            await self.admin.start()
        except OSError as exc:
            raise StartupError(f"admin socket {self.admin.path}: {exc.strerror}; "
                               "set server.admin_socket to a writable path") from None

    async def _start_recovery(self) -> None:
        """Client records and the grace period (RFC 8881 §8.4.2), before listening: a server
        that cannot keep client records refuses to start rather than serve without them."""
        from securenfs.recovery.errors import RecoveryError
        from securenfs.recovery.settings import build_recovery

        assert self.identity is not None and self.nfs.service is not None
        sc = self.cfg.server
        rec = build_recovery(self.cfg.recovery, sc.state_dir, grace_time=sc.grace_time, lease_time=sc.lease_time)
        try:
            await rec.start(self.identity.boot_epoch)
        except RecoveryError as exc:
            raise StartupError(f"client recovery ({self.cfg.recovery.backend}): {exc}") from None
        except ImportError as exc:
            raise StartupError(f"client recovery ({self.cfg.recovery.backend}): {exc}; install the "
                               "missing package or use backend = \"sqlite\"") from None
        self.recovery = rec
        self.nfs.service.recovery = rec
        self.admin.add_provider("grace", rec.status)

    async def _start_metrics(self, host: str, port: int) -> None:
        """Prometheus series on http://HOST:PORT/metrics, fed by the status providers and by
        the operations as they run."""
        from securenfs.admin.metrics import ServerMetrics
        from securenfs.proto.constants import Op

        m = ServerMetrics(self.admin.snapshot, {int(o): o.name for o in Op})
        try:
            await m.start(host, port)
        except OSError as exc:
            await self.stop()
            raise StartupError(f"cannot listen on {host}:{port} for metrics: {exc.strerror}; "
                               "choose another server.metrics_listen") from None
        self.metrics = m
        if self.nfs.service is not None:
            self.nfs.service.metrics = m
        if self.recovery is not None:
            store_write = m.store_write
            self.recovery.on_write = lambda kind, secs: store_write.labels(kind).observe(secs)
        mapper = getattr(self.owners, "mapper", None)
        if mapper is not None:
            mapper.on_backend_time = m.idmap_backend.observe
        log.info("metrics on http://%s/metrics", ", ".join(f"{h}:{p}" for h, p in m.bound))

    def request_stop(self) -> None:
        self._stop.set()

    def _status_server(self) -> dict[str, object]:
        ident = self.identity
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "listen": [f"{h}:{p}" for h, p in self.bound],
            "server_owner": ident.server_owner if ident else None,
            "server_scope": ident.server_scope if ident else None,
            "boot_epoch": ident.boot_epoch if ident else None,
            "connections": len(self.rpc.connections),
            "calls_in_flight": self.rpc.inflight(),
        }

    def served_flavors(self) -> dict[str, list[str]]:
        """Per export (pseudo path), the flavors served right now: what the live SecPolicy
        allows, without the Kerberos flavors while no RPCSEC_GSS handler answers."""
        svc = self.nfs.service
        if svc is None:
            return {}
        policy = svc.ns.policy
        return {e.pseudo: [f for f in policy.flavors(e) if self.gss is not None or f not in KERBEROS_FLAVORS]
                for e in policy.table.exports}

    def _status_exports(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        served = self.served_flavors()
        for e in self.cfg.exports:
            flavors = served.get(e.pseudo, [])
            entry: dict[str, object] = {"pseudo": e.pseudo, "path": str(e.path), "flavors": flavors,
                                        "configured": list(e.sec), "enabled": bool(flavors),
                                        "disabled_because": self.disabled_exports.get(e.pseudo, [])}
            if self.gate_state == "running" and e.needs_kerberos:
                entry["disabled_because"] = ["preflight still running: Kerberos flavors held back"]
            out.append(entry)
        return out

    def _status_preflight(self) -> dict[str, object]:
        last = self.gate_last
        checks = {cid: {"status": c.status, "summary": c.summary, "remedy": c.remedy, "ran_at": c.ran_at}
                  for cid, c in (last.checks if last else {}).items()}
        return {"state": self.gate_state, "interval": self.cfg.preflight.interval,
                "kerberos": "on" if any(f in KERBEROS_FLAVORS for fs in self.served_flavors().values() for f in fs)
                else "off",
                "checks": checks}

    def _status_gss(self) -> dict[str, object]:
        assert self.gss is not None
        contexts = self.gss.contexts()
        return {"contexts": len(contexts), "stats": self.gss.stats(), "details": contexts[:100]}

    async def stop(self) -> None:
        log.info("stopping: no new connections; finishing calls in flight")
        if self._gate_task is not None and not self._gate_task.done():
            self._gate_task.cancel()
        await self.rpc.stop()
        await self.admin.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        await self._stop_recovery()
        if self.nfs.service is not None:
            self.nfs.service.ns.close()
        close = getattr(self.owners, "close", None)
        if close is not None:
            close()
        if self.gss is not None:
            await self.gss.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        log.info("stopped")

    async def _stop_recovery(self) -> None:
        """Every record is already durable; forget clients that hold nothing (they have
        nothing to reclaim) and close the store.  Never waits out leases (seed 004, point 4)."""
        rec, svc = self.recovery, self.nfs.service
        if rec is None:
            return
        self.recovery = None
        try:
            if svc is not None:
                await svc.settle_records()
                await rec.forget_stateless(svc.stateless_owners())
        finally:
            await rec.stop()

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        await self._stop.wait()
        await self.stop()


def admin_socket_path(cfg: Config) -> Path:
    return cfg.server.admin_socket or cfg.server.state_dir / "admin.sock"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (measurably faster for small calls), asyncio otherwise."""
    if os.environ.get("SECURENFS_NO_UVLOOP") != "1":
        try:
            import uvloop

            return uvloop.new_event_loop()  # type: ignore[no-any-return]
        except ImportError:
            pass
    return asyncio.new_event_loop()


def serve(cfg: Config, ready_file: Path | None = None, load_config: Callable[[], Config] | None = None) -> int:
    strict_outcome: gate.GateOutcome | None = None
    if gate.needed(cfg) and cfg.preflight.strict:
        # --strict: the preflight runs before anything listens, and any failure refuses.
        strict_outcome = gate.decide(cfg)
        gate.log_outcome(cfg, strict_outcome)
        if strict_outcome.restricted:
            log.error("refusing to start (preflight.strict / --strict): fix the problems above, "
                      "or start without --strict to serve the other exports")
            return 2
    if cfg.uses_kerberos and cfg.kerberos.fast_path:
        # Keep megabyte-sized krb5p buffers in the heap for reuse (docs/gsscrypto.md).
        from securenfs.gsscrypto.malloctune import tune_malloc_for_large_buffers

        tune_malloc_for_large_buffers()
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = Server(cfg)
    server.load_config = load_config
    if strict_outcome is not None:
        server.gate_state = "done"  # Kerberos is served from the start; the live gate re-runs later
        server.gate_last = strict_outcome
    elif gate.needed(cfg):
        server.hold_for_preflight()
    try:
        loop.run_until_complete(server.start())
    except StartupError as exc:
        log.error("%s", exc)
        loop.close()
        return 2
    if ready_file is not None:
        ready_file.write_text("\n".join(f"{h} {p}" for h, p in server.bound) + "\n")
    try:
        loop.run_until_complete(server.run_until_stopped())
    finally:
        loop.close()
    return 0
