"""ONC RPC over TCP on asyncio (RFC 5531 §11 record marking).

One :class:`Connection` (an ``asyncio.Protocol``) per client connection reassembles records
from fragments, decodes the call header and hands the call to the authentication flavor and
then to the program.  Calls run concurrently and their replies go out as they complete,
matched by xid; NULL calls under AUTH_NONE/AUTH_SYS are answered inline.

Nothing a client sends may escape as an exception: a malformed header gets the RPC error the
RFC prescribes, a record larger than the configured maximum closes only that connection, and
every refusal is logged with the peer, the xid and the reason.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from securenfs.rpc import message as msg
from securenfs.rpc.auth import (
    AuthDrop,
    Authenticated,
    AuthReject,
    Buffers,
    ControlReply,
    FlavorHandler,
    GarbageArgs,
    SimpleFlavor,
    authenticate_none,
    authenticate_sys,
)
from securenfs.rpc.constants import AuthFlavor, AuthStat
from securenfs.rpc.peerlog import PeerLog
from securenfs.rpc.record import LAST_FRAGMENT, RM, cut_fragment

log = logging.getLogger("securenfs.rpc")

#: A NULL call with AUTH_NONE credential and verifier is exactly these ten words.
_NULL_CALL = struct.Struct(">10I")
_NULL_REPLY = struct.Struct(">7I")
DEFAULT_MAX_RECORD = 4 * 1024 * 1024 + 64 * 1024
DEFAULT_MAX_INFLIGHT = 512


class ProcUnavail(Exception):
    """The program does not have this procedure."""


class SystemErr(Exception):
    """The server cannot serve the call (accept_stat SYSTEM_ERR)."""


class Program(Protocol):
    """An RPC program served over this transport."""

    prog: int
    low_version: int
    high_version: int

    async def call(self, call: msg.RpcCall, auth: Authenticated) -> Buffers: ...


@dataclass(slots=True)
class TransportLimits:
    max_record_size: int = DEFAULT_MAX_RECORD
    max_inflight_per_connection: int = DEFAULT_MAX_INFLIGHT


class Connection(asyncio.Protocol):
    """One client TCP connection."""

    _ids = itertools.count(1)

    def __init__(self, server: RpcServer):
        self.server = server
        self.id = next(self._ids)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("?", 0)
        #: Free for upper layers (sessions bound to this connection, GSS accounting...).
        self.data: dict[str, Any] = {}
        self._close_callbacks: list[Callable[[Connection], None]] = []
        self._buf = bytearray()
        self._frags: list[bytearray | memoryview] = []
        self._frag_total = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._read_paused = False
        self._write_paused = False
        self._write_waiters: list[asyncio.Future[None]] = []
        self.closed = False
        self._out: list[bytes | bytearray | memoryview] = []
        self._in_receive = False
        self._flush_scheduled = False

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = (str(peer[0]), int(peer[1]))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.server._connections.add(self)
        log.debug("%s connected", self.label)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._connections.discard(self)
        for fut in self._write_waiters:
            if not fut.done():
                fut.set_result(None)
        self._write_waiters.clear()
        for cb in self._close_callbacks:
            try:
                cb(self)
            except Exception:  # a faulty callback must not stop the others
                log.exception("%s close callback failed", self.label)
        self._close_callbacks.clear()
        log.debug("%s disconnected%s", self.label, f": {exc}" if exc else "")

    def pause_writing(self) -> None:
        # The peer is not reading its replies: stop reading its calls until it does.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        for fut in self._write_waiters:
            if not fut.done():
                fut.set_result(None)
        self._write_waiters.clear()

    def data_received(self, data: bytes) -> None:
        self._in_receive = True
        try:
            self._receive(data)
        finally:
            self._in_receive = False
            if self._out:
                self._flush()

    def _receive(self, data: bytes) -> None:
        buf = self._buf
        if buf:
            buf += data
        else:
            buf = self._buf = bytearray(data)
        pos = 0
        n = len(buf)
        limit = self.server.limits.max_record_size
        while n - pos >= 4:
            hdr = RM.unpack_from(buf, pos)[0]
            flen = hdr & 0x7FFFFFFF
            if flen + self._frag_total > limit:
                log.warning(
                    "%s record of at least %d bytes exceeds the limit of %d bytes; closing the connection",
                    self.label,
                    flen + self._frag_total,
                    limit,
                )
                self._abort()
                return
            end = pos + 4 + flen
            if end > n:
                break
            if flen == 40 and hdr & LAST_FRAGMENT and not self._frags:
                # NULL under AUTH_NONE (pings, and the first call of most clients): answered
                # from the receive buffer without building a call object.
                xid, mtype, rv, prog_n, vers, proc, cf, cl, vf, vl = _NULL_CALL.unpack_from(buf, pos + 4)
                if not (mtype | proc | cf | cl | vf | vl) and rv == 2:
                    prog = self.server.programs.get(prog_n)
                    if prog is not None and prog.low_version <= vers <= prog.high_version:
                        self._out.append(_NULL_REPLY.pack(LAST_FRAGMENT | 24, xid, 1, 0, 0, 0, 0))
                        pos = end
                        continue
            frag, rest = cut_fragment(buf, pos + 4, end)
            if rest is None:
                pos = end
            else:  # a large fragment, handed over in the receive buffer
                buf = self._buf = rest
                pos = 0
                n = len(buf)
            if hdr & LAST_FRAGMENT:
                if self._frags:
                    self._frags.append(frag)
                    record: bytes | bytearray | memoryview = b"".join(self._frags)
                    self._frags = []
                    self._frag_total = 0
                else:
                    record = frag
                self._dispatch(record)
                if self.closed:
                    return
            else:
                self._frags.append(frag)
                self._frag_total += flen
        if pos:
            del buf[:pos]

    def eof_received(self) -> bool | None:
        if self._buf or self._frags:
            log.info("%s closed the connection in the middle of a record (%d bytes discarded)",
                     self.label, len(self._buf) + self._frag_total)
            self._buf = bytearray()
            self._frags = []
            self._frag_total = 0
        # Keep the write side open so replies to calls in flight can still be sent.
        return True if self._inflight else None

    # -- helpers ------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"peer={self.peer[0]}:{self.peer[1]}"

    def on_close(self, cb: Callable[[Connection], None]) -> None:
        self._close_callbacks.append(cb)

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        want_pause = self._write_paused or len(self._inflight) >= self.server.limits.max_inflight_per_connection
        if want_pause and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        elif not want_pause and self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()

    def send_record(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Queue one reply record (a single fragment).

        Replies produced in one pass of the event loop go out in one ``writelines`` (one
        system call for many pipelined replies).
        """
        if self.closed:
            return
        total = 0
        for p in parts:
            total += len(p)
        out = self._out
        out.append(RM.pack(LAST_FRAGMENT | total))
        out.extend(parts)
        if not self._in_receive and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        self._out = []
        if self.closed or self.transport is None or self.transport.is_closing():
            return
        self.transport.writelines(out)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self._write_paused and not self.closed:
            fut = asyncio.get_running_loop().create_future()
            self._write_waiters.append(fut)
            await fut

    # -- dispatch -----------------------------------------------------------------------------
    def _dispatch(self, record: bytes | bytearray | memoryview) -> None:
        view = record if isinstance(record, memoryview) else memoryview(record)
        try:
            call = msg.decode_call(view)
        except msg.BadCallHeader as exc:
            xid = f"xid={exc.xid:#010x}" if exc.xid is not None else "xid=?"
            self._note(logging.WARNING, f"{xid} refused: {exc.reason}", "bad call header")
            if exc.reply is not None:
                self.send_record([exc.reply])
            return
        call.conn = self
        server = self.server
        handler = server.flavors.get(call.cred_flavor)
        if handler is None:
            why = server.held_flavors.get(call.cred_flavor, f"security flavor {call.cred_flavor} is not supported")
            self._note(logging.WARNING, f"xid={call.xid:#010x} refused: {why}", "AUTH_BADCRED")
            server.auth_failures["AUTH_BADCRED"] += 1
            self.send_record([msg.auth_error(call.xid, AuthStat.AUTH_BADCRED)])
            return
        server.calls_by_flavor[call.cred_flavor] += 1
        if call.proc == 0 and isinstance(handler, SimpleFlavor):
            # NULL under AUTH_NONE/AUTH_SYS: answered inline, no task (RFC 5531 §12.1).
            try:
                auth = handler.check(call)
            except AuthReject as exc:
                self._log_reject(call, exc)
                self.send_record([msg.auth_error(call.xid, exc.stat)])
                return
            prog = server.programs.get(call.prog)
            if len(auth.args) and prog is not None:
                # NULL takes no arguments (RFC 5531 §12.1).
                self._log_call(call, logging.WARNING, f"garbage arguments: {len(auth.args)} bytes after a NULL call",
                               "GARBAGE_ARGS")
                self.send_record([msg.garbage_args(call.xid)])
                return
            if self._served(call) is not None:
                self.send_record([msg.success(call.xid)])
            return
        task = asyncio.get_running_loop().create_task(self._serve(call, handler))
        self._inflight.add(task)
        task.add_done_callback(self._task_done)
        if len(self._inflight) >= server.limits.max_inflight_per_connection:
            self._update_reading()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._read_paused:
            self._update_reading()
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - _serve catches all
            log.error("%s call task failed: %r", self.label, task.exception())
        if self.server._stopping and not self.server.inflight():
            self.server._idle_event.set()

    def _note(self, level: int, text: str, kind: str = "refused") -> None:
        """Log one line about this connection's peer, within the peer's log budget
        (securenfs.rpc.peerlog: a hostile client cannot flood the log)."""
        self.server.peerlog.log(log, level, self.peer[0], kind, "%s %s", self.label, text)

    def _log_call(self, call: msg.RpcCall, level: int, reason: str, kind: str = "refused") -> None:
        self._note(level, f"xid={call.xid:#010x} prog={call.prog} vers={call.vers} proc={call.proc}: {reason}", kind)

    def _served(self, call: msg.RpcCall, vf: int = 0, vb: bytes = b"") -> Program | None:
        """The program serving the call's program and version, or None once PROG_UNAVAIL or
        PROG_MISMATCH (with the supported range) is sent (RFC 5531 §9); ``vf``/``vb`` is the
        reply verifier."""
        prog = self.server.programs.get(call.prog)
        if prog is None:
            self._log_call(call, logging.INFO, f"program {call.prog} is not served", "PROG_UNAVAIL")
            self.send_record([msg.prog_unavail(call.xid, vf, vb)])
            return None
        if not prog.low_version <= call.vers <= prog.high_version:
            self._log_call(call, logging.INFO, f"program {call.prog} version {call.vers} is not served",
                           "PROG_MISMATCH")
            self.send_record([msg.prog_mismatch(call.xid, prog.low_version, prog.high_version, vf, vb)])
            return None
        return prog

    def _log_reject(self, call: msg.RpcCall, exc: AuthReject) -> None:
        self.server.auth_failures[exc.stat.name] += 1
        self._log_call(call, logging.WARNING, f"authentication refused ({exc.stat.name}): {exc.reason}", exc.stat.name)

    async def _serve(self, call: msg.RpcCall, handler: FlavorHandler) -> None:
        xid = call.xid
        try:
            res = await handler.authenticate(call)
        except AuthReject as exc:
            self._log_reject(call, exc)
            self.send_record([msg.auth_error(xid, exc.stat)])
            return
        except AuthDrop as exc:
            self._log_call(call, logging.INFO, f"dropped without reply: {exc}", "dropped")
            return
        except GarbageArgs as exc:
            self._log_call(call, logging.WARNING, f"garbage arguments: {exc}", "GARBAGE_ARGS")
            self.send_record([msg.garbage_args(xid, exc.verf_flavor, exc.verf_body)])
            return
        except Exception:
            self.server.peerlog.log(log, logging.ERROR, self.peer[0], "SYSTEM_ERR",
                                    "%s xid=%#010x authentication failed inside the server", self.label, xid,
                                    exc_info=True)
            self.send_record([msg.system_err(xid)])
            return
        if isinstance(res, ControlReply):
            self.send_record([msg.accepted_header(xid, 0, res.verf_flavor, res.verf_body), res.body])
            return
        vf, vb = res.verf_flavor, res.verf_body
        prog = self._served(call, vf, vb)
        if prog is None:
            return
        body: Buffers
        try:
            if call.proc == 0:
                if len(res.args):
                    raise GarbageArgs(f"{len(res.args)} bytes of arguments after a NULL call")
                body = []
            else:
                body = await prog.call(call, res)
            if res.protect_reply is not None:
                body = await res.protect_reply(body)
        except ProcUnavail:
            self._log_call(call, logging.INFO, "procedure is not available", "PROC_UNAVAIL")
            self.send_record([msg.proc_unavail(xid, vf, vb)])
            return
        except GarbageArgs as exc:
            self._log_call(call, logging.WARNING, f"garbage arguments: {exc}", "GARBAGE_ARGS")
            self.send_record([msg.garbage_args(xid, vf, vb)])
            return
        except SystemErr as exc:
            self._log_call(call, logging.ERROR, f"system error: {exc}", "SYSTEM_ERR")
            self.send_record([msg.system_err(xid, vf, vb)])
            return
        except AuthDrop as exc:
            self._log_call(call, logging.INFO, f"dropped without reply: {exc}", "dropped")
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            self.server.peerlog.log(log, logging.ERROR, self.peer[0], "SYSTEM_ERR",
                                    "%s xid=%#010x prog=%d proc=%d: server fault", self.label, xid, call.prog,
                                    call.proc, exc_info=True)
            self.send_record([msg.system_err(xid, vf, vb)])
            return
        self.send_record([msg.accepted_header(xid, 0, vf, vb), *body])


class RpcServer:
    """Listens on TCP addresses and serves registered programs."""

    def __init__(self, limits: TransportLimits | None = None, peerlog: PeerLog | None = None):
        self.limits = limits or TransportLimits()
        #: The log budget of every peer, shared by the layers above (one mechanism for RPC
        #: refusals and per-operation errors).
        self.peerlog = peerlog or PeerLog()
        self.programs: dict[int, Program] = {}
        self.flavors: dict[int, FlavorHandler] = {
            AuthFlavor.AUTH_NONE: SimpleFlavor(authenticate_none),
            AuthFlavor.AUTH_SYS: SimpleFlavor(authenticate_sys),
        }
        #: flavor -> why it is not served now (logged instead of "not supported" when a call
        #: uses it), e.g. RPCSEC_GSS held back by the preflight gate with the failing checks.
        self.held_flavors: dict[int, str] = {}
        #: Calls handed to a served flavor, by flavor; calls refused with an authentication
        #: error, by auth_stat name (both bounded: the keys are the served flavors and the
        #: auth_stat values).  Read by ``securenfs status`` and the metrics.
        self.calls_by_flavor: Counter[int] = Counter()
        self.auth_failures: Counter[str] = Counter()
        self._servers: list[asyncio.AbstractServer] = []
        self._summaries: asyncio.Task[None] | None = None
        self._connections: set[Connection] = set()
        self._stopping = False
        self._idle_event = asyncio.Event()

    def add_program(self, program: Program) -> None:
        self.programs[program.prog] = program

    def set_flavor(self, flavor: int, handler: FlavorHandler | None) -> None:
        if handler is None:
            self.flavors.pop(flavor, None)
        else:
            self.flavors[flavor] = handler

    async def listen(self, host: str, port: int) -> list[tuple[str, int]]:
        """Start listening; returns the bound (host, port) pairs (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: Connection(self), host, port, reuse_address=True, backlog=512)
        self._servers.append(srv)
        if self._summaries is None:
            self._summaries = loop.create_task(self._write_summaries())
        return [tuple(s.getsockname()[:2]) for s in srv.sockets]

    async def _write_summaries(self) -> None:
        while True:
            await asyncio.sleep(self.peerlog.window)
            self.peerlog.flush_due()

    def stats(self) -> dict[str, Any]:
        """JSON-ready counters for ``securenfs status`` and the metrics."""
        return {"calls_by_flavor": {_flavor_name(f): n for f, n in self.calls_by_flavor.items()},
                "auth_failures": dict(self.auth_failures)}

    @property
    def connections(self) -> set[Connection]:
        return self._connections

    def inflight(self) -> int:
        return sum(len(c._inflight) for c in self._connections)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let calls in flight finish (up to ``timeout``), close connections."""
        self._stopping = True
        if self._summaries is not None:
            self._summaries.cancel()
            self._summaries = None
        for srv in self._servers:
            srv.close()
        for conn in list(self._connections):
            if conn.transport is not None and not conn.closed:
                conn.transport.pause_reading()
        if self.inflight():
            self._idle_event.clear()
            try:
                await asyncio.wait_for(self._idle_event.wait(), timeout)
            except TimeoutError:
                log.warning("stopping with %d calls still in flight after %.0f s", self.inflight(), timeout)
        for conn in list(self._connections):
            conn.close()
        self.peerlog.flush()
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2.0)
            except TimeoutError:
                pass
        self._servers.clear()


def _flavor_name(flavor: int) -> str:
    try:
        return AuthFlavor(flavor).name
    except ValueError:
        return str(flavor)
