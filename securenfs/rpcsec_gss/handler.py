"""The server side of RPCSEC_GSS version 1 (RFC 2203): the RPC layer's flavor handler.

``RpcsecGssHandler.authenticate`` turns a call with flavor RPCSEC_GSS (6) into:

* INIT / CONTINUE_INIT (§5.2): one leg of context establishment, answered with an
  rpc_gss_init_res (a :class:`ControlReply`); the final leg's verifier is a MIC over the
  window size (§5.2.3.1).
* DATA (§5.3): header MIC checked, seq_num checked against the window, the arguments
  unwrapped per service (none / rpc_gss_integ_data / rpc_gss_priv_data, §5.3.2), and an
  :class:`Authenticated` whose credential carries the Kerberos principal, the pseudo-flavor
  (RFC 2623) and whose reply verifier is a MIC over seq_num (§5.3.3.2).
* DESTROY (§5.4): as DATA, then the context is removed.

Failures follow §5.3.3.1 and §5.3.3.3: unknown or expired handle and bad header checksum
-> AUTH_ERROR RPCSEC_GSS_CREDPROBLEM; seq_num >= MAXSEQ -> RPCSEC_GSS_CTXPROBLEM (and the
context is destroyed); duplicates and numbers below the window -> dropped without a reply;
a body that fails its checksum or decryption or carries another seq_num -> GARBAGE_ARGS.
No such call reaches a program.

Crypto never runs under a lock.  Context establishment and large bodies run in the
server's thread pool (python-gssapi and ctypes release the GIL); small MICs run inline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import gssapi
from gssapi.raw.misc import GSSError

from securenfs.rpc.auth import (
    AuthDrop,
    Authenticated,
    AuthReject,
    Buffers,
    ControlReply,
    Credential,
    GarbageArgs,
    Principal,
)
from securenfs.rpc.constants import AuthFlavor, AuthStat
from securenfs.rpc.message import RpcCall
from securenfs.rpcsec_gss import wire
from securenfs.rpcsec_gss.acceptor import Acceptor
from securenfs.rpcsec_gss.constants import (
    GSS_S_COMPLETE,
    GSS_S_CONTINUE_NEEDED,
    GSS_S_DEFECTIVE_TOKEN,
    MAX_INIT_TOKEN,
    MAXSEQ,
    GssProc,
    GssService,
)
from securenfs.rpcsec_gss.context import CtxState, GssContext
from securenfs.rpcsec_gss.flavors import KRB5_OID_DOTTED, pseudo_flavor_for_service
from securenfs.rpcsec_gss.gsserrors import Cause, GssFailure, translate, translate_exception
from securenfs.rpcsec_gss.protection import (
    Engine,
    Protection,
    ProtectionError,
    choose_protection,
    integ_parts,
    wrap_opaque,
)
from securenfs.rpcsec_gss.seqwindow import SeqVerdict
from securenfs.rpcsec_gss.table import ContextTable, TableLimits
from securenfs.xdr import XdrError

log = logging.getLogger("securenfs.rpcsec_gss")

T = TypeVar("T")

#: Bodies up to this size are MIC'd/wrapped on the event loop; larger ones in the pool.
INLINE_MAX = 16 * 1024
#: MIT adds the clock-skew allowance to an acceptor context's lifetime; the ticket ends
#: that much earlier (krb5.conf clockskew, default 300 s).
DEFAULT_CLOCK_SKEW = 300.0


@dataclass(slots=True)
class GssSettings:
    #: ``kerberos.fast_path``: compute per-message tokens with OpenSSL where possible.
    fast_path: bool = True
    clock_skew: float = DEFAULT_CLOCK_SKEW
    max_init_token: int = MAX_INIT_TOKEN
    max_body: int = 64 * 1024 * 1024
    reap_interval: float = 30.0


@dataclass(slots=True)
class ProtectionStats:
    """How many contexts got each engine, and per-message checks that failed."""

    contexts_openssl: int = 0
    contexts_mit: int = 0
    #: MIT contexts by reason the fast path was not used (including "kerberos.fast_path is off").
    mit_reasons: dict[str, int] = field(default_factory=dict)
    #: Bodies (integrity or privacy) that failed their check: GARBAGE_ARGS.
    bad_bodies: int = 0
    #: Call headers whose MIC failed: RPCSEC_GSS_CREDPROBLEM.
    bad_headers: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "contexts_openssl": self.contexts_openssl,
            "contexts_mit": self.contexts_mit,
            "mit_reasons": dict(self.mit_reasons),
            "bad_bodies": self.bad_bodies,
            "bad_headers": self.bad_headers,
        }


#: Distinct reasons kept in ProtectionStats.mit_reasons; the rest count under "other".
MAX_REASONS = 32


def _total(pieces: Buffers) -> int:
    n = 0
    for p in pieces:
        n += len(p)
    return n


class RpcsecGssHandler:
    """The RPCSEC_GSS flavor handler; register with ``RpcServer.set_flavor(6, handler)``."""

    def __init__(
        self,
        acceptor: Acceptor,
        executor: Executor | None = None,
        limits: TableLimits | None = None,
        settings: GssSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.acceptor = acceptor
        self.executor = executor
        self.settings = settings or GssSettings()
        self.table = ContextTable(limits, clock)
        self._clock = clock
        self._reaper: asyncio.Task[None] | None = None
        self.protection_stats = ProtectionStats()

    @classmethod
    def from_config(cls, kc: Any, hostname: str, executor: Executor | None = None) -> RpcsecGssHandler:
        """Build from ``Config.kerberos``; raises KeytabProblem."""
        acceptor = Acceptor.load(kc.keytab, list(kc.principals), hostname)
        limits = TableLimits(
            max_contexts=kc.max_contexts,
            max_per_peer=kc.max_contexts_per_peer,
            seq_window=kc.seq_window,
            idle_timeout=float(kc.context_idle_timeout),
        )
        return cls(acceptor, executor, limits, GssSettings(fast_path=bool(kc.fast_path)))

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the periodic reaper (needs a running loop)."""
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except asyncio.CancelledError:
                pass
            self._reaper = None

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval)
            self.table.reap()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _protection(self, prot: Protection, size: int, fn: Callable[..., T], *args: Any) -> T:
        """Run a per-message call of ``prot`` over ``size`` octets: inline when small, in the
        pool when large or when the context is busy in another thread (a context on MIT's
        library takes one call at a time, and the event loop must not wait for it)."""
        if size <= INLINE_MAX and not prot.busy():
            return fn(*args)
        return await self._run(fn, *args)

    # -- entry point --------------------------------------------------------------------------
    async def authenticate(self, call: RpcCall) -> Authenticated | ControlReply:
        try:
            cred = wire.decode_cred(call.cred_body)
        except wire.BadVersion as exc:
            # RFC 2203 §5.3.3.1: an unsupported version is AUTH_BADCRED.
            raise AuthReject(AuthStat.AUTH_BADCRED, str(exc)) from None
        except XdrError as exc:
            raise AuthReject(AuthStat.AUTH_BADCRED, f"malformed RPCSEC_GSS credential: {exc}") from None
        proc = cred.gss_proc
        if proc == GssProc.DATA:
            return await self._data(call, cred, destroy=False)
        if proc == GssProc.INIT:
            return await self._init(call, cred, None)
        if proc == GssProc.CONTINUE_INIT:
            ctx = self.table.get(cred.handle)
            if ctx is None or ctx.state is not CtxState.PENDING:
                raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM,
                                 "CONTINUE_INIT for a context that is not being established")
            return await self._init(call, cred, ctx)
        if proc == GssProc.DESTROY:
            return await self._data(call, cred, destroy=True)
        raise AuthReject(AuthStat.AUTH_BADCRED, f"unknown RPCSEC_GSS procedure {proc}")

    @staticmethod
    def _peer(call: RpcCall) -> str:
        return call.conn.peer[0] if call.conn is not None else "?"

    # -- INIT / CONTINUE_INIT (RFC 2203 §5.2) ------------------------------------------------
    async def _init(self, call: RpcCall, cred: wire.GssCred, ctx: GssContext | None) -> ControlReply:
        peer = self._peer(call)
        if call.proc != 0:
            raise AuthReject(AuthStat.AUTH_BADCRED, "RPCSEC_GSS INIT must use procedure 0 (NULL)")
        if call.verf_flavor != AuthFlavor.AUTH_NONE:
            # RFC 2203 §5.2.2: context creation calls carry an AUTH_NONE verifier.
            raise AuthReject(AuthStat.AUTH_BADVERF, "RPCSEC_GSS INIT with a verifier other than AUTH_NONE")
        try:
            token = wire.decode_init_arg(call.args, self.settings.max_init_token)
        except XdrError as exc:
            if ctx is not None:
                self.table.remove(ctx)
            raise GarbageArgs(f"malformed rpc_gss_init_arg (tokens up to {self.settings.max_init_token} "
                              f"bytes are accepted): {exc}") from None
        if not token:
            if ctx is not None:
                self.table.remove(ctx)
            failure = translate(GSS_S_DEFECTIVE_TOKEN, 0, "empty context token")
            self._log_accept_failure(peer, call, failure)
            return ControlReply(wire.encode_init_res(wire.InitRes(b"", failure.major, 0, 0, b"")))
        if ctx is None:
            ctx = self.table.new_pending(peer)
            ctx.gss = gssapi.SecurityContext(creds=self.acceptor.creds, usage="accept")
        elif ctx.busy:
            raise AuthDrop("CONTINUE_INIT while the previous leg is still being processed")
        gctx = ctx.gss
        ctx.busy = True
        try:
            out = await self._run(gctx.step, token)
            complete = bool(gctx.complete)
        except GSSError as exc:
            failure = translate_exception(exc)
            self.table.remove(ctx)
            self._log_accept_failure(peer, call, failure)
            res = wire.InitRes(b"", failure.major, failure.minor, 0, bytes(getattr(exc, "token", None) or b""))
            return ControlReply(wire.encode_init_res(res))
        finally:
            ctx.busy = False
        out = out or b""
        if ctx.state is CtxState.DEAD:
            # Evicted while the step ran: the client must start again.
            raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM, "context evicted during establishment")
        window = self.table.limits.seq_window
        if not complete:
            self.table.touch(ctx)
            res = wire.InitRes(ctx.handle, GSS_S_CONTINUE_NEEDED, 0, window, out)
            return ControlReply(wire.encode_init_res(res))
        # RFC 2203 §5.2.3.1: the verifier of the final leg is a MIC over seq_window.
        window_bytes = wire.seq_bytes(window)
        try:
            protection, first_mic = await self._finish(ctx, gctx, peer, window_bytes)
        except AuthReject:
            self.table.remove(ctx)
            raise
        verf = first_mic if first_mic is not None else protection.get_mic(window_bytes)
        res = wire.InitRes(ctx.handle, GSS_S_COMPLETE, 0, window, out)
        return ControlReply(wire.encode_init_res(res), AuthFlavor.RPCSEC_GSS, verf)

    async def _finish(self, ctx: GssContext, gctx: gssapi.SecurityContext, peer: str,
                      window_bytes: bytes) -> tuple[Protection, bytes | None]:
        if gctx.mech is None or gctx.mech.dotted_form != KRB5_OID_DOTTED:
            log.warning("peer=%s: GSS context with mechanism %s refused: only Kerberos V5 (%s) is served",
                        peer, gctx.mech.dotted_form if gctx.mech else "?", KRB5_OID_DOTTED)
            raise AuthReject(AuthStat.AUTH_BADCRED, f"mechanism {gctx.mech} is not Kerberos V5")
        try:
            client = str(gctx.initiator_name.canonicalize(gssapi.MechType.kerberos))
            target = str(gctx.target_name.canonicalize(gssapi.MechType.kerberos)) if gctx.target_name else ""
            lifetime = float(gctx.lifetime)
        except GSSError as exc:
            f = translate_exception(exc)
            log.warning("peer=%s: cannot inquire the new GSS context: %s", peer, f.describe())
            raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM, f.describe()) from None
        if target and not self.acceptor.is_allowed(target):
            log.warning("peer=%s: client %s authenticated to %s, which is not an accepted principal "
                        "(%s); refused. Add it to kerberos.principals if this host serves that name",
                        peer, client, target, ", ".join(str(n) for n in self.acceptor.allowed))
            raise AuthReject(AuthStat.AUTH_BADCRED, f"service principal {target} is not accepted")
        name, _, realm = client.rpartition("@")
        ctx.principal = Principal(name, realm)
        ctx.acceptor_name = target
        # The context ends with the ticket; MIT's acceptor lifetime includes the clock skew.
        ticket_left = max(0.0, lifetime - self.settings.clock_skew)
        try:
            chosen = choose_protection(gctx, self.settings.fast_path, window_bytes)
        except ProtectionError as exc:
            log.warning("peer=%s %s: cannot set up message protection: %s", peer, client, exc)
            raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM, str(exc)) from None
        protection, info = chosen.protection, chosen.info
        ctx.protection = protection
        ctx.protection_info = info
        self._count_protection(info.engine, info.reason)
        self.table.established(ctx, ticket_left)
        why = f"; fast path not used: {info.reason}" if info.reason else ""
        log.info("peer=%s %s: GSS context established with %s (protection %s/%s, %s%s; ends in %.0f s)",
                 peer, ctx.label(), target or "?", info.engine.value, protection.kind,
                 info.enctype or "enctype unknown", why, ticket_left)
        return protection, chosen.first_mic

    def _count_protection(self, engine: Engine, reason: str) -> None:
        st = self.protection_stats
        if engine is Engine.OPENSSL:
            st.contexts_openssl += 1
            return
        st.contexts_mit += 1
        key = reason or "unknown"
        if key not in st.mit_reasons and len(st.mit_reasons) >= MAX_REASONS:
            key = "other"
        st.mit_reasons[key] = st.mit_reasons.get(key, 0) + 1

    def _log_accept_failure(self, peer: str, call: RpcCall, f: GssFailure) -> None:
        extra = ""
        if f.cause in (Cause.KVNO_MISMATCH, Cause.MISSING_PRINCIPAL, Cause.UNSUPPORTED_ENCTYPE, Cause.WRONG_KEY):
            self.acceptor.reload_keytab()
            extra = f"; {self.acceptor.keytab_summary()}"
        self._log_for_peer(call, logging.WARNING, f"GSS {f.cause.name}",
                           "peer=%s xid=%#010x: RPCSEC_GSS context establishment failed: %s%s",
                           peer, call.xid, f.describe(), extra)

    @staticmethod
    def _log_for_peer(call: RpcCall, level: int, kind: str, fmt: str, *args: object) -> None:
        """A line about what a peer sent, within the peer's log budget (securenfs.rpc.peerlog):
        anyone can send INIT tokens or bodies that fail, as fast as they like."""
        conn = call.conn
        if conn is None:
            log.log(level, fmt, *args)
        else:
            conn.server.peerlog.log(log, level, conn.peer[0], kind, fmt, *args)

    # -- DATA / DESTROY (RFC 2203 §5.3, §5.4) --------------------------------------------------
    async def _data(self, call: RpcCall, cred: wire.GssCred, destroy: bool) -> Authenticated:
        table = self.table
        ctx = table.get(cred.handle)
        peer = self._peer(call)
        if ctx is None:
            raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM,
                             f"unknown context handle {cred.handle[:4].hex()} (destroyed, expired or evicted); "
                             "the client must establish a new context")
        if ctx.state is not CtxState.ESTABLISHED or ctx.protection is None:
            raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM, f"{ctx.label()}: context not established")
        now = self._clock()
        if now >= ctx.expires_at:
            table.remove(ctx)
            table.stats.expired += 1
            # RFC 2203 §5.3.3.3: expired credentials -> CREDPROBLEM so the client refreshes.
            raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM,
                             f"{ctx.label()}: the Kerberos ticket behind this context has expired")
        if cred.service not in (GssService.NONE, GssService.INTEGRITY, GssService.PRIVACY):
            raise AuthReject(AuthStat.AUTH_BADCRED, f"unknown RPCSEC_GSS service {cred.service}")
        if destroy and call.proc != 0:
            raise AuthReject(AuthStat.AUTH_BADCRED, "RPCSEC_GSS DESTROY must use procedure 0 (NULL)")
        if call.verf_flavor != AuthFlavor.RPCSEC_GSS:
            raise AuthReject(AuthStat.AUTH_BADVERF, f"verifier flavor {call.verf_flavor}, not RPCSEC_GSS")
        prot = ctx.protection
        seq = cred.seq_num
        # RFC 2203 §5.3.3.1: the header checksum covers the header up to and including the
        # credential; a failure is CREDPROBLEM.
        try:
            await self._protection(prot, 0, prot.verify_mic, call.header_for_verifier, call.verf_body)
        except ProtectionError as exc:
            self.protection_stats.bad_headers += 1
            raise AuthReject(AuthStat.RPCSEC_GSS_CREDPROBLEM, f"{ctx.label()}: header checksum: {exc}") from None
        if seq >= MAXSEQ:
            # RFC 2203 §5.3.3.1: the sequence space is exhausted; the context must go.
            table.destroy(ctx)
            log.info("peer=%s %s: seq_num %#x reached MAXSEQ; context destroyed", peer, ctx.label(), seq)
            raise AuthReject(AuthStat.RPCSEC_GSS_CTXPROBLEM, f"seq_num {seq:#x} >= MAXSEQ")
        verdict = ctx.window.check(seq)
        if verdict is not SeqVerdict.ACCEPT:
            raise AuthDrop(f"{ctx.label()}: seq_num {seq} is {verdict.value} "
                           f"(window top {ctx.window.top}, size {ctx.window.size}); RFC 2203 §5.3.3.1")
        table.touch(ctx)
        verf = await self._protection(prot, 0, prot.get_mic, wire.seq_bytes(seq))
        service = GssService(cred.service)
        # The Linux client sends DESTROY under krb5i/krb5p with empty, unwrapped arguments
        # (and knfsd accepts that, skipping the body): a DESTROY has no arguments to protect,
        # so an empty body is taken as it is and the empty reply goes out unwrapped too.
        bare_destroy = destroy and service is not GssService.NONE and len(call.args) == 0
        args = call.args if bare_destroy else await self._unprotect_args(call, ctx, prot, service, seq, verf)
        if destroy:
            table.destroy(ctx)
            log.info("peer=%s %s: context destroyed by the client", peer, ctx.label())
        credential = Credential(
            AuthFlavor.RPCSEC_GSS,
            int(pseudo_flavor_for_service(service)),
            principal=ctx.principal,
            gss_service=int(service),
            context=ctx,
        )
        protect = None
        if bare_destroy:
            pass
        elif service is GssService.INTEGRITY:
            protect = self._integ_reply(prot, seq)
        elif service is GssService.PRIVACY:
            protect = self._priv_reply(prot, seq)
        return Authenticated(credential, args, AuthFlavor.RPCSEC_GSS, verf, protect)

    async def _unprotect_args(self, call: RpcCall, ctx: GssContext, prot: Protection, service: GssService,
                              seq: int, verf: bytes) -> memoryview:
        if service is GssService.NONE:
            return call.args
        body = call.args
        try:
            if service is GssService.INTEGRITY:
                # RFC 2203 §5.3.2.2: rpc_gss_integ_data { databody_integ, checksum }.
                data, checksum = wire.split_integ(body, self.settings.max_body)
                await self._protection(prot, len(data), prot.verify_mic, data, checksum)
                plain: bytes | memoryview = data
            else:
                # RFC 2203 §5.3.2.3: rpc_gss_priv_data { databody_priv } (a wrap token).
                token = wire.split_priv(body, self.settings.max_body)
                plain = await self._protection(prot, len(token), prot.unwrap, token)
            inner_seq, args = wire.take_seq(plain)
        except XdrError as exc:
            raise GarbageArgs(f"{ctx.label()}: malformed {service.name.lower()} body: {exc}",
                              AuthFlavor.RPCSEC_GSS, verf) from None
        except ProtectionError as exc:
            self.protection_stats.bad_bodies += 1
            self._log_for_peer(call, logging.WARNING, "GSS body rejected",
                               "peer=%s %s xid=%#010x: %s body rejected: %s", self._peer(call), ctx.label(),
                               call.xid, service.name.lower(), exc)
            raise GarbageArgs(f"{ctx.label()}: {service.name.lower()} check failed",
                              AuthFlavor.RPCSEC_GSS, verf) from None
        if inner_seq != seq:
            # RFC 2203 §5.3.2.2/3: the seq_num inside must equal the credential's.
            raise GarbageArgs(f"{ctx.label()}: seq_num {inner_seq} inside the {service.name.lower()} body "
                              f"differs from the credential's {seq}", AuthFlavor.RPCSEC_GSS, verf)
        return args

    def _integ_reply(self, prot: Protection, seq: int) -> Callable[[Buffers], Any]:
        async def protect(results: Buffers) -> Buffers:
            # RFC 2203 §5.3.2.2: rpc_gss_integ_data { seq_num + results, MIC over them }.
            pieces = [wire.seq_bytes(seq), *results]
            return await self._protection(prot, _total(pieces), integ_parts, prot, pieces)

        return protect

    def _priv_reply(self, prot: Protection, seq: int) -> Callable[[Buffers], Any]:
        async def protect(results: Buffers) -> Buffers:
            # RFC 2203 §5.3.2.3: rpc_gss_priv_data, a wrap token over seq_num + results.
            pieces = [wire.seq_bytes(seq), *results]
            return await self._protection(prot, _total(pieces), wrap_opaque, prot, pieces)

        return protect

    # -- admin ------------------------------------------------------------------------------
    def contexts(self) -> list[dict[str, Any]]:
        """JSON-ready summaries of every context, including its protection engine."""
        return [c.describe() for c in self.table]

    def stats(self) -> dict[str, Any]:
        """JSON-ready counters: the context table's and the protection engines'."""
        out: dict[str, Any] = {"fast_path": self.settings.fast_path, "contexts": len(self.table)}
        out["table"] = asdict(self.table.stats)
        out["protection"] = self.protection_stats.as_dict()
        return out
