"""A loopback TCP relay between the guest's forward and the server that notes what the kernel
client asks and which NFSv4 operation fails with which status.

The relay passes bytes through untouched; a copy of each direction is cut into RPC records
(RFC 5531 §11 record marking) and decoded just far enough to name the COMPOUND's operations and
the failing one: a failed COMPOUND ends with the failing operation's result (RFC 8881 §15.2),
which for most operations is only (opnum, status).  Calls protected with krb5p are encrypted and
are counted but not decoded.  Parsing never disturbs the relay: a record it cannot read is
counted as opaque.

When the server goes away (a restart scenario), open relayed connections are closed so the
client reconnects, exactly as it would to the server itself.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from securenfs.proto.constants import Op, Stat

NFS_PROGRAM = 100003
RPCSEC_GSS = 6
OP_SEQUENCE = 53
GSS_SVC_NONE, GSS_SVC_INTEGRITY, GSS_SVC_PRIVACY = 1, 2, 3
FLAVOR_NAMES = {0: "none", 1: "sys", 6: "gss"}
GSS_SERVICE_NAMES = {1: "krb5", 2: "krb5i", 3: "krb5p"}


def op_name(n: int) -> str:
    try:
        return Op(n).name
    except ValueError:
        return f"op{n}"


def stat_name(n: int) -> str:
    try:
        return "NFS4ERR_" + Stat(n).name if n else "NFS4_OK"
    except ValueError:
        return f"status {n}"


@dataclass(slots=True)
class Compound:
    when: float
    flavor: str
    ops: list[str]  # the operations decoded from the request (may stop early)
    status: int | None = None  # overall COMPOUND status, None until the reply (or undecodable)
    failed_op: str | None = None

    def describe(self) -> str:
        ops = ",".join(self.ops) or "?"
        if self.status is None:
            return f"[{self.flavor}] {ops}: no decodable reply"
        if self.status == 0:
            return f"[{self.flavor}] {ops}: OK"
        return f"[{self.flavor}] {ops}: {self.failed_op or '?'} -> {stat_name(self.status)}"


class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.d = data
        self.p = pos

    def u32(self) -> int:
        v = struct.unpack_from(">I", self.d, self.p)[0]
        self.p += 4
        return int(v)

    def opaque(self) -> bytes:
        n = self.u32()
        v = self.d[self.p:self.p + n]
        if len(v) != n:
            raise ValueError("short opaque")
        self.p += (n + 3) & ~3
        return v

    def skip(self, n: int) -> None:
        self.p += n


# Argument sizes of the operations that commonly precede the interesting one, so the decoder can
# walk past them: None = no arguments, "opaque" = one variable opaque, "bitmap" = bitmap4.
_ARG_SKIP: dict[int, object] = {
    Op.PUTFH: "opaque", Op.PUTROOTFH: None, Op.PUTPUBFH: None, Op.GETFH: None,
    Op.SAVEFH: None, Op.RESTOREFH: None, Op.LOOKUP: "opaque", Op.LOOKUPP: None,
    Op.GETATTR: "bitmap", Op.ACCESS: 4, Op.READLINK: None, Op.SECINFO: "opaque",
    Op.SECINFO_NO_NAME: 4, Op.REMOVE: "opaque", Op.RECLAIM_COMPLETE: 4, OP_SEQUENCE: 32,
}


def _compound_ops(r: _Reader) -> list[str]:
    r.opaque()  # tag
    r.u32()  # minorversion
    count = r.u32()
    ops: list[str] = []
    for _ in range(min(count, 64)):
        opnum = r.u32()
        ops.append(op_name(opnum))
        how = _ARG_SKIP.get(opnum, "stop")
        if how == "stop":
            if len(ops) < count:
                ops.append("...")
            break
        if how == "opaque":
            r.opaque()
        elif how == "bitmap":
            r.skip(4 * r.u32())
        elif isinstance(how, int):
            r.skip(how)
    return ops


@dataclass(slots=True)
class _Pending:
    compound: Compound
    service: int


@dataclass
class Watch:
    """What went through the relay (shared by all its connections)."""

    connections: int = 0
    records: int = 0
    compounds: deque[Compound] = field(default_factory=lambda: deque(maxlen=50000))
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    ops_seen: Counter[str] = field(default_factory=Counter)
    gss_inits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def between(self, t0: float, t1: float) -> list[Compound]:
        with self.lock:
            return [c for c in self.compounds if t0 <= c.when <= t1]

    def failures_between(self, t0: float, t1: float) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.between(t0, t1):
            if c.status:
                out[f"{c.failed_op or '?'} -> {stat_name(c.status)}"] += 1
        return out

    def summary(self) -> str:
        with self.lock:
            fails = ", ".join(f"{op} -> {st} x{n}" for (op, st), n in self.failures.most_common(12))
            seen = ", ".join(f"{op} x{n}" for op, n in self.ops_seen.most_common(20))
            return (f"{self.connections} connections, {self.records} RPC records, "
                    f"{self.gss_inits} GSS context set-ups; ops: {seen or 'none'}; "
                    f"failures: {fails or 'none'}")


class _Conn:
    def __init__(self, watch: Watch):
        self.watch = watch
        self.pending: dict[int, _Pending] = {}
        self.plock = threading.Lock()

    def on_call(self, rec: bytes) -> None:
        r = _Reader(rec)
        xid = r.u32()
        if r.u32() != 0:
            return
        r.u32()  # rpcvers
        prog, _vers, proc = r.u32(), r.u32(), r.u32()
        flavor = r.u32()
        cred = _Reader(r.opaque())
        r.u32()
        r.opaque()  # verifier
        if prog != NFS_PROGRAM:
            return
        service, gss_proc = GSS_SVC_NONE, 0
        label = FLAVOR_NAMES.get(flavor, str(flavor))
        if flavor == RPCSEC_GSS:
            cred.u32()  # version
            gss_proc = cred.u32()
            cred.u32()  # seq
            service = cred.u32()
            label = GSS_SERVICE_NAMES.get(service, "gss")
            if gss_proc in (1, 2):
                with self.watch.lock:
                    self.watch.gss_inits += 1
                return
            if gss_proc != 0:
                return
        if proc != 1:
            return
        ops: list[str] = []
        if service == GSS_SVC_PRIVACY:
            ops = ["(encrypted)"]
        else:
            if service == GSS_SVC_INTEGRITY:
                r.u32()  # databody length
                r.u32()  # sequence number
            try:
                ops = _compound_ops(r)
            except (struct.error, ValueError):
                ops = ops or ["?"]
        c = Compound(time.time(), label, ops)
        with self.watch.lock:
            self.watch.compounds.append(c)
            for o in ops:
                if o not in ("...", "?", "(encrypted)", "SEQUENCE"):
                    self.watch.ops_seen[o] += 1
        with self.plock:
            self.pending[xid] = _Pending(c, service)

    def on_reply(self, rec: bytes) -> None:
        r = _Reader(rec)
        xid = r.u32()
        with self.plock:
            p = self.pending.pop(xid, None)
        if p is None or r.u32() != 1 or r.u32() != 0:
            return
        r.u32()
        r.opaque()  # verifier
        if r.u32() != 0 or p.service == GSS_SVC_PRIVACY:
            return
        end = len(rec)
        if p.service == GSS_SVC_INTEGRITY:
            n = r.u32()
            end = r.p + n
            r.u32()  # sequence number
        status = r.u32()
        p.compound.status = status
        if status:
            # The failing operation is the last result; for nearly all operations an error
            # result is just (opnum, status) (RFC 8881 §15.2).
            opnum, last = struct.unpack_from(">II", rec, end - 8)
            name = op_name(opnum) if last == status else "?"
            p.compound.failed_op = name
            with self.watch.lock:
                self.watch.failures[(name, stat_name(status))] += 1


def _records(buf: bytearray, frags: list[bytes]) -> list[bytes]:
    """Cut complete RPC records out of ``buf`` (consumed in place)."""
    out = []
    while len(buf) >= 4:
        mark = struct.unpack_from(">I", buf, 0)[0]
        n = mark & 0x7FFFFFFF
        if len(buf) < 4 + n:
            break
        frags.append(bytes(buf[4:4 + n]))
        del buf[:4 + n]
        if mark & 0x80000000:
            out.append(b"".join(frags))
            frags.clear()
    return out


class RpcWatchRelay:
    """Listen on 127.0.0.1 (free port); relay each connection to 127.0.0.1:``upstream_port``."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.watch = Watch()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._clock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="rpcwatch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._clock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                down, _ = self._sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()  # server down: the client sees a refused/closed connection and retries
                continue
            with self.watch.lock:
                self.watch.connections += 1
            conn = _Conn(self.watch)
            with self._clock:
                self._conns.update((down, up))
            for src, dst, calls in ((down, up, True), (up, down, False)):
                threading.Thread(target=self._pump, args=(src, dst, conn, calls),
                                 name="rpcwatch-pump", daemon=True).start()

    def _note(self, recs: list[bytes], handler: Callable[[bytes], None]) -> None:
        for rec in recs:
            with self.watch.lock:
                self.watch.records += 1
            try:
                handler(rec)
            except (struct.error, ValueError, IndexError):
                pass

    def _pump(self, src: socket.socket, dst: socket.socket, conn: _Conn, calls: bool) -> None:
        buf = bytearray()
        frags: list[bytes] = []
        try:
            while True:
                data = src.recv(262144)
                if not data:
                    break
                buf += data
                recs = _records(buf, frags)
                if calls:
                    # Note the calls before they leave, so a fast reply always finds its call.
                    self._note(recs, conn.on_call)
                    dst.sendall(data)
                else:
                    dst.sendall(data)
                    self._note(recs, conn.on_reply)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._clock:
                self._conns.discard(src)
            src.close()
