"""A session-aware fuzzer for the NFSv4.1 server, seeded from real traffic.

Seeds are the COMPOUNDs our client sends for an ordinary workload (mount, create, write,
read, lock, rename, link, readdir, setattr, ...), recorded as it sends them
(:class:`RecordingRpc`), plus the stored corpus ``tests/support/fuzz_seeds.txt`` of the same
kind.  Each fuzz call takes a seed, patches a live session id, slot and sequence id into its
SEQUENCE (so most calls get past SEQUENCE and reach the operations), then mutates it at one
level:

* COMPOUND: bit flips, a 32-bit word set to 0x7fffffff / 0xffffffff / 0 / 0x80000000,
  truncation, a lying op count, an unknown op number, an op's arguments replaced by random
  bytes, ops spliced from other seeds, a random op stream;
* RPC: the call header (version, program, procedure, flavor, credential and verifier
  lengths) and the record cut short;
* RPCSEC_GSS (with a Kerberos context): see :func:`mutate_gss`.

It talks to the server over a raw TCP connection (:class:`RawConn`) and keeps figures in
:class:`FuzzStats`.  Everything is driven by one ``random.Random(seed)``; the run is bounded by
a call count.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import AuthSys, ClientAuth, RpcClient
from securenfs.nfs4.optable import OPTABLE
from securenfs.nfs4.xdr4 import BitmapArgs, CreateArgs, Fattr, FhArgs
from securenfs.proto.constants import Attr, FType, Op, Stat, stat_name
from securenfs.rpc import message as msg
from securenfs.rpc.record import LAST_FRAGMENT, RM
from securenfs.xdr import Unpacker

NFS_PROGRAM = 100003
SEED_CORPUS = Path(__file__).with_name("fuzz_seeds.txt")
_U32 = struct.Struct(">I")
_SPECIAL_WORDS = (0x7FFFFFFF, 0xFFFFFFFF, 0, 0x80000000, 0xFFFFFFFE, 1)
_STATUS_LOST_SESSION = frozenset({Stat.BADSESSION, Stat.DEADSESSION, Stat.STALE_CLIENTID, Stat.EXPIRED,
                                  Stat.SEQ_MISORDERED, Stat.CONN_NOT_BOUND_TO_SESSION})


# -- recording our client's calls -------------------------------------------------------------
class RecordingRpc(RpcClient):
    """An RpcClient that keeps the arguments of every NFS call it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded: list[bytes] = []

    async def call(self, prog: int, vers: int, proc: int, args: Any = b"", auth: ClientAuth | None = None,
                   timeout: float | None = 30.0) -> bytes | memoryview:
        if prog == NFS_PROGRAM and proc == 1:
            parts = (args,) if isinstance(args, (bytes, bytearray, memoryview)) else args
            self.recorded.append(b"".join(bytes(p) for p in parts))
        return await super().call(prog, vers, proc, args, auth, timeout)


async def record_workload(host: str, port: int, export: str, auth: ClientAuth) -> list[bytes]:
    """Run an ordinary workload with our client; the COMPOUND arguments it sent.  An
    RPCSEC_GSS ``auth`` may come from another connection (contexts are not bound to one)."""
    rec = await RecordingRpc.connect(host, port)
    c = Nfs4Client(rec, auth, slots=4)
    root = await c.mount(export)
    await c.secinfo_no_name(root)
    await c.getattr(root)
    await c.open(root, "seed-file", access=1, create=True, attrs={Attr.MODE: 0o666})
    f = await c.open(root, "seed-file")
    await c.write(f.fh, 0, b"hello world" * 50, f.stateid)
    await c.read(f.fh, 0, 4096, f.stateid)
    await c.commit(f.fh)
    lk = await c.lock(f, 0, 100)
    await c.lockt(f.fh, 200, 10)
    await c.locku(f.fh, lk, 0, 100)
    await c.setattr(f.fh, {Attr.SIZE: 10}, f.stateid)
    await c.setattr(f.fh, {Attr.MODE: 0o640, Attr.TIME_MODIFY_SET: (1_600_000_000, 5), Attr.TIME_ACCESS_SET: None})
    await c.test_stateids([f.stateid])
    await c.open_downgrade(f, 1)
    await c.close_file(f)
    d, _ = await c.create(root, "seed-dir", 2)
    await c.create(root, "seed-link", 5, link=b"seed-file")
    # A FIFO and a character device: refused where devices are not allowed, and the device by
    # the kernel for a non-root caller, but their arguments (specdata4) are in the seeds.
    await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.CREATE, CreateArgs(FType.FIFO, b"seed-fifo", Fattr()))])
    await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.CREATE, CreateArgs(FType.CHR, b"seed-chr", Fattr(), b"", (1, 3)))])
    await c.link(f.fh, d, "seed-hard")
    await c.rename(root, "seed-file", d, "seed-moved")
    await c.readdir_all(root)
    await c.readdir_all(d)
    await c.lookup_path(export.rstrip("/") + "/seed-dir/seed-moved")
    await c.remove(d, "seed-hard")
    await c.close()
    return rec.recorded


#: The file handle in stored seeds; the fuzzer puts a live handle in its place.
PLACEHOLDER_FH = b"\xfe" * 28


def kernel_shaped_corpus() -> list[bytes]:
    """COMPOUNDs shaped like the Linux client's (its op sequences, three-word attribute masks,
    OPEN want flags, EXCHANGE_ID implementation id, SECINFO_NO_NAME of the parent, callback
    security parameters), which our own client does not send.  ``make fuzz-corpus`` writes
    them to :data:`SEED_CORPUS`."""
    from securenfs.client.nfs4 import Nfs4Client as C
    from securenfs.nfs4 import xdr4 as x

    fh = (Op.PUTFH, x.FhArgs(PLACEHOLDER_FH))
    seq = (Op.SEQUENCE, x.SequenceArgs(b"\0" * 16, 1, 0, 0, False))
    v = x.VoidArgs()
    # FATTR4 words as the kernel asks them: type, change, size, fsid, fileid / mode, numlinks,
    # owner, owner_group, rawdev, space_used, times, mounted_on_fileid / a word-2 bit.
    getattr_mask = [0x0010011A, 0x00B0A23A, 0x00000800]
    open_attrs = [0x0010011A, 0x00B0A23A]
    owner = x.StateOwner(0, b"open id:\0\0\0\x01\0\0\0\0\0\x0c\x9c\x1f")
    want_no_deleg = 0x0400
    zero_sid = b"\0" * 16
    ops: list[list[tuple[int, Any]]] = [
        [(Op.EXCHANGE_ID, x.ExchangeIdArgs(b"\x5f" * 8, b"Linux NFSv4.1 client.example.test", 0x101, 0, None,
                                           x.ImplId(b"kernel.org", b"Linux 6.1.0-13-amd64 #1 SMP x86_64", 0, 0)))],
        [(Op.CREATE_SESSION, x.CreateSessionArgs(0x1234, 1, 3, x.ChannelAttrs(0, 1049620, 1049480, 7584, 8, 64),
                                                 x.ChannelAttrs(0, 4096, 4096, 0, 2, 16), 0x40000000,
                                                 [x.CbSecParms(1, b"\0" * 20)]))],
        [seq, (Op.RECLAIM_COMPLETE, x.ReclaimCompleteArgs(False))],
        [seq, (Op.PUTROOTFH, v), (Op.SECINFO_NO_NAME, x.SecinfoNoNameArgs(0))],
        [seq, (Op.PUTROOTFH, v), (Op.GETFH, v), (Op.GETATTR, x.BitmapArgs(getattr_mask))],
        [seq, fh, (Op.SECINFO_NO_NAME, x.SecinfoNoNameArgs(1))],
        [seq, fh, (Op.LOOKUP, x.NameArgs(b"dir")), (Op.GETFH, v), (Op.GETATTR, x.BitmapArgs(getattr_mask))],
        [seq, fh, (Op.ACCESS, x.AccessArgs(0x1F)), (Op.GETATTR, x.BitmapArgs(getattr_mask))],
        [seq, fh, (Op.SAVEFH, v), (Op.OPEN, x.OpenArgs(0, 2 | want_no_deleg, 0, owner, 1, 1,
                                                       x.Fattr(open_attrs[:1] + [0x2], b"\0\0\x01\xa4"))),
         (Op.GETFH, v), (Op.ACCESS, x.AccessArgs(0x2D)), (Op.GETATTR, x.BitmapArgs(getattr_mask)),
         (Op.RESTOREFH, v), (Op.GETATTR, x.BitmapArgs([0x0010011A, 0x00B0A23A]))],
        [seq, fh, (Op.READ, x.ReadArgs(zero_sid, 0, 262144))],
        [seq, fh, (Op.WRITE, x.WriteArgs(zero_sid, 0, 0, b"kernel-shaped write\n")),
         (Op.GETATTR, x.BitmapArgs([0x18, 0x300000]))],
        [seq, fh, (Op.COMMIT, x.CommitArgs(0, 0))],
        [seq, fh, (Op.CLOSE, x.CloseArgs(0, zero_sid))],
        [seq, fh, (Op.READDIR, x.ReaddirArgs(0, b"\0" * 8, 65536, 262144, [0x0018091A, 0x00B0A23A]))],
        [seq, fh, (Op.LOOKUPP, v), (Op.GETFH, v), (Op.GETATTR, x.BitmapArgs(getattr_mask))],
        [seq, fh, (Op.TEST_STATEID, x.TestStateidArgs([zero_sid, b"\x01" * 16]))],
        [seq, (Op.FREE_STATEID, x.StateidArgs(b"\x01" * 16))],
        [seq, fh, (Op.READLINK, v)],
        [seq, fh, (Op.VERIFY, x.FattrArgs(x.Fattr([0x10], b"\0" * 8)))],
        [seq, fh, (Op.NVERIFY, x.FattrArgs(x.Fattr([0x8], b"\0" * 8)))],
        [(Op.DESTROY_SESSION, x.SessionIdArgs(b"\0" * 16))],
        [(Op.DESTROY_CLIENTID, x.ClientIdArgs(0x1234))],
    ]
    return [C.encode(o) for o in ops]


def write_corpus(path: Path = SEED_CORPUS) -> None:
    lines = ["# Seed COMPOUND arguments for tests/support/fuzz.py, one per line in hex, shaped like the",
             "# Linux client's calls (kernel_shaped_corpus); handles are a placeholder the fuzzer replaces.",
             "# Regenerate: make fuzz-corpus"]
    path.write_text("\n".join(lines + [c.hex() for c in kernel_shaped_corpus()]) + "\n")


def load_corpus(path: Path = SEED_CORPUS) -> list[bytes]:
    """The stored seeds: one hex-encoded COMPOUND argument per line, ``#`` comments."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(bytes.fromhex(line))
    return out


# -- COMPOUND structure ----------------------------------------------------------------------
@dataclass(slots=True)
class Compound:
    """A COMPOUND's arguments split where the ops start (decoded with the server's tables)."""

    tag: bytes
    minorversion: int
    ops: list[tuple[int, bytes]]  # (opnum, encoded arguments)
    tail: bytes = b""  # what could not be decoded

    @classmethod
    def parse(cls, data: bytes) -> Compound:
        u = Unpacker(memoryview(data))
        tag = bytes(u.opaque(1 << 16))
        minor = u.u32()
        n = u.u32()
        ops: list[tuple[int, bytes]] = []
        for _ in range(n):
            start = u.pos
            try:
                opnum = u.u32()
                spec = OPTABLE.get(opnum)
                if spec is None or spec.args is None:
                    break
                spec.args.unpack(u)  # type: ignore[attr-defined]
            except Exception:  # XdrError, or a value the decoder refuses
                u.pos = start
                break
            ops.append((opnum, bytes(data[start + 4 : u.pos])))
        return cls(tag, minor, ops, bytes(data[u.pos :]))

    def encode(self, count: int | None = None) -> bytes:
        head = _opaque(self.tag) + _U32.pack(self.minorversion)
        head += _U32.pack(len(self.ops) if count is None else count & 0xFFFFFFFF)
        return head + b"".join(_U32.pack(op) + args for op, args in self.ops) + self.tail

    @property
    def sequenced(self) -> bool:
        return bool(self.ops) and self.ops[0][0] == Op.SEQUENCE


def _opaque(b: bytes) -> bytes:
    return _U32.pack(len(b)) + b + b"\0" * (-len(b) % 4)


def sequence_args(sessionid: bytes, seqid: int, slot: int = 0, highest: int = 0) -> bytes:
    return sessionid + struct.pack(">IIII", seqid & 0xFFFFFFFF, slot, highest, 0)


# -- mutations -------------------------------------------------------------------------------
def _flip_bits(rng: random.Random, data: bytes, start: int) -> bytes:
    if len(data) <= start:
        return data
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        i = rng.randrange(start, len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _set_word(rng: random.Random, data: bytes, start: int) -> bytes:
    words = (len(data) - start) // 4
    if words <= 0:
        return data
    i = start + 4 * rng.randrange(words)
    r = rng.random()
    if r < 0.6:
        w = rng.choice(_SPECIAL_WORDS)
    elif r < 0.85:
        w = rng.randrange(8)  # discriminants: object types, create modes, claims, time_how
    else:
        w = rng.getrandbits(32)
    return data[:i] + _U32.pack(w) + data[i + 4 :]


def mutate_compound(rng: random.Random, comp: Compound, others: Sequence[Compound]) -> tuple[str, bytes]:
    """One COMPOUND-level mutation; (its name, the encoded arguments).  Mutations start after
    SEQUENCE so the call still reaches the operations (the SEQUENCE itself is left alone)."""
    keep = 1 if comp.sequenced else 0
    head = Compound(comp.tag, comp.minorversion, comp.ops[:keep]).encode()
    body_ops = list(comp.ops[keep:])
    kind = rng.choice(("flip", "flip", "word", "word", "truncate", "count", "unknown_op", "random_args",
                       "splice", "stream", "duplicate"))
    if kind in ("flip", "word", "truncate"):
        whole = Compound(comp.tag, comp.minorversion, comp.ops, comp.tail).encode()
        start = len(head)
        if kind == "flip":
            return kind, _flip_bits(rng, whole, start)
        if kind == "word":
            # Stacked: a discriminant and a number in the arm it selects need two changes.
            for _ in range(rng.choice((1, 1, 2, 3))):
                whole = _set_word(rng, whole, start)
            return kind, whole
        return kind, whole[: rng.randrange(start, len(whole) + 1)] if len(whole) > start else whole
    if kind == "count":
        n = len(comp.ops)
        count = rng.choice((0, max(n - 1, 0), n + 1, n + 50, 0x7FFFFFFF, 0xFFFFFFFF))
        return kind, Compound(comp.tag, comp.minorversion, comp.ops, comp.tail).encode(count)
    if kind == "unknown_op":
        bad = rng.choice((0, 1, 2, 59, 60, 75, 10043, 10045, 0x7FFFFFFF, 0xFFFFFFFF))
        pos = rng.randrange(len(body_ops) + 1)
        body_ops.insert(pos, (bad, os.urandom(rng.randrange(0, 16)) if rng.random() < 0.5 else b""))
    elif kind == "random_args" and body_ops:
        i = rng.randrange(len(body_ops))
        n = len(body_ops[i][1])
        body_ops[i] = (body_ops[i][0], rng.randbytes(rng.choice((0, 4, 8, max(n, 1), n + 4))))
    elif kind == "splice" and others:
        donor = rng.choice(others)
        extra = [op for op in donor.ops if op[0] != Op.SEQUENCE]
        if extra:
            body_ops[rng.randrange(len(body_ops) + 1):0] = rng.sample(extra, min(len(extra), rng.randrange(1, 4)))
    elif kind == "stream":
        pool = [op for o in others for op in o.ops if op[0] != Op.SEQUENCE] or body_ops
        body_ops = [rng.choice(pool) for _ in range(rng.randrange(1, 12))] if pool else body_ops
        if rng.random() < 0.3:
            body_ops.insert(rng.randrange(len(body_ops) + 1), (Op.SEQUENCE, comp.ops[0][1] if keep else b""))
    elif kind == "duplicate" and body_ops:
        i = rng.randrange(len(body_ops))
        body_ops[i:i] = [body_ops[i]] * rng.randrange(1, 6)
    return kind, Compound(comp.tag, comp.minorversion, [*comp.ops[:keep], *body_ops], comp.tail).encode()


def mutate_call_header(rng: random.Random, header: bytes) -> tuple[str, bytes]:
    """An RPC-level mutation of a call header (xid kept): RFC 5531 §9 fields and the
    opaque_auth lengths."""
    # xid, mtype, rpcvers, prog, vers, proc, cred flavor, cred length, ...
    kind = rng.choice(("rpcvers", "prog", "vers", "proc", "flavor", "cred_len", "verf", "flip", "truncate"))
    words = list(struct.unpack_from(">8I", header))
    if kind == "rpcvers":
        words[2] = rng.choice((0, 1, 3, 0xFFFFFFFF))
    elif kind == "prog":
        words[3] = rng.choice((0, 100000, 100005, 0xFFFFFFFF))
    elif kind == "vers":
        words[4] = rng.choice((0, 3, 5, 0xFFFFFFFF))
    elif kind == "proc":
        words[5] = rng.choice((2, 3, 0x7FFFFFFF, 0xFFFFFFFF))
    elif kind == "flavor":
        words[6] = rng.choice((2, 3, 5, 6, 390003, 0x7FFFFFFF))
    elif kind == "cred_len":
        words[7] = rng.choice((0x7FFFFFFF, 0xFFFFFFFF, 401, 1, 3))
    out = struct.pack(">8I", *words) + header[32:]
    if kind == "verf":
        cl = struct.unpack_from(">I", header, 28)[0]
        vpos = 32 + ((cl + 3) & ~3)
        if vpos + 8 <= len(header):
            out = out[: vpos + 4] + _U32.pack(rng.choice((0x7FFFFFFF, 401, 0xFFFFFFFF))) + out[vpos + 8 :]
    elif kind == "flip":
        out = out[:4] + _flip_bits(rng, out[4:], 4)
    elif kind == "truncate":
        out = out[: rng.randrange(4, len(out))]
    return "rpc_" + kind, out


# -- a raw connection ------------------------------------------------------------------------
class RawConn(asyncio.Protocol):
    """Sends whole records and collects replies by xid."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._frags: list[bytes] = []
        self.replies: dict[int, bytes] = {}
        self._waiters: dict[int, asyncio.Future[bytes]] = {}
        self.lost = asyncio.get_event_loop().create_future()

    @classmethod
    async def open(cls, host: str, port: int) -> RawConn:
        loop = asyncio.get_running_loop()
        _t, proto = await loop.create_connection(cls, host, port)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 4:
            hdr = RM.unpack_from(self._buf, 0)[0]
            n = hdr & 0x7FFFFFFF
            if len(self._buf) < 4 + n:
                return
            self._frags.append(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
            if hdr & LAST_FRAGMENT:
                rec = b"".join(self._frags)
                self._frags = []
                if len(rec) >= 4:
                    xid = _U32.unpack_from(rec, 0)[0]
                    fut = self._waiters.pop(xid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(rec)
                    else:
                        self.replies[xid] = rec

    @property
    def closed(self) -> bool:
        return self.lost.done()

    def send(self, record: bytes) -> None:
        assert self.transport is not None
        self.transport.writelines([RM.pack(LAST_FRAGMENT | len(record)), record])

    async def wait(self, xid: int, timeout: float) -> bytes | None:
        if xid in self.replies:
            return self.replies.pop(xid)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[xid] = fut
        try:
            return await asyncio.wait_for(fut, timeout)
        except (TimeoutError, ConnectionError):
            return None
        finally:
            self._waiters.pop(xid, None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- the run ---------------------------------------------------------------------------------
@dataclass
class FuzzStats:
    calls: int = 0
    compound_replies: int = 0
    past_sequence: int = 0
    serverfaults: int = 0
    system_errs: int = 0
    no_reply: int = 0
    reconnects: int = 0
    new_sessions: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    faults: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        share = self.past_sequence / max(self.compound_replies, 1)
        return (f"{self.calls:,} calls, {self.compound_replies:,} COMPOUND replies, {share:.0%} past SEQUENCE, "
                f"{self.serverfaults} SERVERFAULT, {self.system_errs} SYSTEM_ERR, {self.no_reply} without reply, "
                f"{self.reconnects} reconnects, {self.new_sessions} new sessions")


class Fuzzer:
    """Fuzz calls against ``host:port`` as ``uid``/``gid`` over AUTH_SYS, seeded by ``seeds``."""

    def __init__(self, host: str, port: int, seeds: list[bytes], *, seed: int = 25,
                 auth: ClientAuth | None = None, gss: bool = False,
                 new_client: Callable[[], Any] | None = None):
        self.host, self.port = host, port
        self.rng = random.Random(seed)
        self.auth: ClientAuth = auth or AuthSys(1000, 1000)
        #: RPCSEC_GSS: protect every call with ``auth`` and mutate at the RPCSEC_GSS level too.
        self.gss = gss
        #: Makes the Nfs4Client that sets up each session (default: AUTH_SYS on a new connection).
        self._new_client = new_client
        self._recent_seqs: list[int] = []
        parsed = [Compound.parse(s) for s in seeds]
        self.seeds = [c for c in parsed if c.ops]
        # Stored seeds name files by a placeholder handle: give them live ones.
        live = [a for c in self.seeds for op, a in c.ops if op == Op.PUTFH and PLACEHOLDER_FH not in a]
        if live:
            for c in self.seeds:
                c.ops = [(op, self.rng.choice(live) if op == Op.PUTFH and PLACEHOLDER_FH in a else a)
                         for op, a in c.ops]
        self.stats = FuzzStats()
        self.conn: RawConn | None = None
        self.sessionid = b""
        self.seqid = 0
        self._xid = self.rng.getrandbits(32)
        self._client: Nfs4Client | None = None

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def _header(self, xid: int) -> bytes:
        flavor, body, _ = self.auth.credential()
        return msg.encode_call(xid, NFS_PROGRAM, 4, 1, flavor, body) + msg.encode_opaque_auth(0, b"")

    def _protected(self, xid: int, args: bytes) -> tuple[bytes, bytes, bytes, Any]:
        """(call header without verifier, verifier, body, state) made by ``auth``."""
        flavor, cred, state = self.auth.credential()
        header = msg.encode_call(xid, NFS_PROGRAM, 4, 1, flavor, cred)
        vf, vb = self.auth.verifier(header, state)
        body = self.auth.wrap_args(args, state)
        return header, msg.encode_opaque_auth(vf, vb), body, state

    async def _session(self) -> None:
        """A fresh client and session (EXCHANGE_ID and CREATE_SESSION by our client); the
        raw connection is bound to it implicitly by its first SEQUENCE (SP4_NONE)."""
        if self._client is not None:
            await self._client.close()
        if self._new_client is not None:
            c = await self._new_client()
        else:
            c = await Nfs4Client.connect(self.host, self.port, self.auth, slots=1)
        await c.establish()
        self._client = c
        self.sessionid = c.sessionid
        self.seqid = 0
        self.stats.new_sessions += 1

    async def _connect(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = await RawConn.open(self.host, self.port)
        self.stats.reconnects += 1

    async def _send(self, record: bytes, timeout: float) -> bytes | None:
        if self.conn is None or self.conn.closed:
            await self._connect()
        assert self.conn is not None
        xid = _U32.unpack_from(record, 0)[0]
        self.conn.send(record)
        return await self.conn.wait(xid, timeout)

    def _note(self, kind: str, reply: bytes | None, sent_seq: bool, state: Any = None) -> None:
        st = self.stats
        st.calls += 1
        st.by_kind[kind] = st.by_kind.get(kind, 0) + 1
        if reply is None:
            st.no_reply += 1
            return
        try:
            r = msg.decode_reply(memoryview(reply))
        except Exception:
            st.faults.append((kind, "undecodable reply"))
            return
        if not r.accepted:
            return
        if r.accept_stat == 5:  # SYSTEM_ERR (RFC 5531 §9)
            st.system_errs += 1
            st.faults.append((kind, "SYSTEM_ERR"))
            return
        if r.accept_stat != 0 or r.body is None:
            return
        if self.gss and state is not None:
            try:
                body = bytes(self.auth.unwrap_results(r, state))
            except Exception as exc:
                st.faults.append((kind, f"reply does not unwrap: {exc}"))
                return
        else:
            body = bytes(r.body)
        if len(body) < 12:
            return
        status = _U32.unpack_from(body, 0)[0]
        st.compound_replies += 1
        name = stat_name(status)
        st.statuses[name] = st.statuses.get(name, 0) + 1
        if status == Stat.SERVERFAULT:
            st.serverfaults += 1
            st.faults.append((kind, body[:64].hex()))
        taglen = _U32.unpack_from(body, 4)[0]
        pos = 8 + ((taglen + 3) & ~3)
        if len(body) >= pos + 12:
            count, op1, st1 = struct.unpack_from(">III", body, pos)
            if count and op1 == Op.SEQUENCE and st1 == 0:
                st.past_sequence += 1
                if sent_seq:
                    self.seqid += 1
                return
            if sent_seq and count and op1 == Op.SEQUENCE and st1 in _STATUS_LOST_SESSION:
                self.sessionid = b""

    async def one(self) -> None:
        rng = self.rng
        if not self.sessionid:
            await self._session()
        comp = rng.choice(self.seeds)
        if comp.sequenced:
            live = Compound(comp.tag, comp.minorversion,
                            [(Op.SEQUENCE, sequence_args(self.sessionid, self.seqid + 1)), *comp.ops[1:]], comp.tail)
        else:
            live = comp
        xid = self._next_xid()
        level = rng.random()
        if self.gss:
            await self._one_gss(xid, live, level)
            return
        if level < 0.1:
            kind, hdr = mutate_call_header(rng, self._header(xid))
            # Some refusals are silent (RFC 5531 leaves a malformed header unanswered): a NULL
            # behind it, answered inline, says when the server is done reading it.
            await self._send(hdr + live.encode(), 0.0)
            sentinel = self._next_xid()
            await self._send(msg.encode_call(sentinel, NFS_PROGRAM, 4, 0, 0, b"") + msg.encode_opaque_auth(0, b""),
                             30.0)
            assert self.conn is not None
            reply = await self.conn.wait(xid, 0.05)
            self.conn.replies.clear()
            # A header mutation may leave the SEQUENCE well-formed and evaluated.
            self._note(kind, reply, live.sequenced)
            return
        if level < 0.13:
            kind, args = "plain", live.encode()
        else:
            kind, args = mutate_compound(rng, live, self.seeds)
        # Every COMPOUND mutation keeps the first op (SEQUENCE) as it was.
        reply = await self._send(self._header(xid) + args, 30.0)
        self._note(kind, reply, live.sequenced)

    async def _one_gss(self, xid: int, live: Compound, level: float) -> None:
        """One call under RPCSEC_GSS: mostly a COMPOUND mutation inside a correctly protected
        body; otherwise a mutation of the RPCSEC_GSS parts (RFC 2203 §5.3): the credential
        (version, procedure, seq_num, service, handle), the header MIC, the krb5i body
        (databody length, seq_num, arguments, checksum) or the krb5p wrap token."""
        rng = self.rng
        if level < 0.6:
            kind, args = mutate_compound(rng, live, self.seeds) if level > 0.05 else ("plain", live.encode())
            header, verf, body, state = self._protected(xid, args)
            reply = await self._send(header + verf + body, 30.0)
            self._note(kind, reply, live.sequenced, state)
            if reply is not None:
                self._recent_seqs = [*self._recent_seqs[-15:], state.seq]
            return
        args = live.encode()
        kind = rng.choice(("gss_replay", "gss_seq_ahead", "gss_cred_flip", "gss_verf_flip", "gss_body_flip",
                           "gss_body_len", "gss_body_truncate", "gss_inner_seq", "gss_service"))
        if kind == "gss_replay" and self._recent_seqs:
            self.auth.force_seq = rng.choice(self._recent_seqs)  # type: ignore[attr-defined]
        elif kind == "gss_seq_ahead":
            # A jump ahead (never to MAXSEQ, which ends the context): the numbers skipped are
            # used up, so no later call repeats one.
            for _ in range(rng.randrange(2, 200)):
                self.auth.credential()
        elif kind == "gss_service":
            self.auth.force_service = rng.choice((0, 1, 2, 3, 4, 0x7FFFFFFF))  # type: ignore[attr-defined]
        header, verf, body, state = self._protected(xid, args)
        if kind == "gss_cred_flip":
            header = header[:8] + _flip_bits(rng, header[8:], 24)  # past rpcvers/prog/vers/proc/flavor
        elif kind == "gss_verf_flip":
            verf = verf[:8] + _flip_bits(rng, verf[8:], 0)
        elif kind == "gss_body_flip":
            body = _flip_bits(rng, body, 0)
        elif kind == "gss_body_len":
            body = _U32.pack(rng.choice((0x7FFFFFFF, 0xFFFFFFFF, 0, 3))) + body[4:]
        elif kind == "gss_body_truncate":
            body = body[: rng.randrange(len(body))]
        elif kind == "gss_inner_seq":
            # An authentic body whose seq_num is not the credential's (RFC 2203 §5.3.3.4.2).
            body = self.auth.wrap_args(args, type(state)(state.seq + rng.randrange(1, 1000), state.service))
        self.auth.force_seq = None  # type: ignore[attr-defined]
        self.auth.force_service = None  # type: ignore[attr-defined]
        if self.conn is None or self.conn.closed:
            await self._connect()
        assert self.conn is not None
        self.conn.send(header + verf + body)
        reply = await self._after_sentinel(xid, 0.1)
        self._note(kind, reply, live.sequenced, state)

    async def _after_sentinel(self, xid: int, grace: float) -> bytes | None:
        """The reply to ``xid`` if it comes by the time a NULL sent after it is answered (plus
        ``grace`` seconds: calls under RPCSEC_GSS may finish in the worker pool)."""
        assert self.conn is not None
        sentinel = self._next_xid()
        self.conn.send(msg.encode_call(sentinel, NFS_PROGRAM, 4, 0, 0, b"") + msg.encode_opaque_auth(0, b""))
        await self.conn.wait(sentinel, 30.0)
        reply = await self.conn.wait(xid, grace)
        self.conn.replies.clear()
        return reply

    async def run(self, count: int, progress: Callable[[FuzzStats], None] | None = None) -> FuzzStats:
        for i in range(count):
            await self.one()
            if progress is not None and i % 1000 == 999:
                progress(self.stats)
        return self.stats

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self._client is not None:
            await self._client.close()


async def good_call(host: str, port: int, auth: ClientAuth, export: str) -> int:
    """A well-formed mount and GETATTR on a fresh connection; the status of the GETATTR."""
    c = await Nfs4Client.connect(host, port, auth)
    try:
        fh = await c.mount(export)
        r = await c.seq_raw([(Op.PUTFH, FhArgs(fh)), (Op.GETATTR, BitmapArgs([1 << Attr.TYPE]))])
        return r.status
    finally:
        await c.close()


# -- the server under test, in its own process -----------------------------------------------
class ServerProcess:
    """``securenfs serve`` in a child process with one sys export (root squashed), its log
    in a file (lines counted), its RSS and descriptors read from /proc."""

    def __init__(self, tmp: Path, export: str = "/fuzz"):
        self.tmp = tmp
        self.export = export
        self.share = tmp / "share"
        self.share.mkdir(exist_ok=True)
        self.share.chmod(0o1777)
        self.log_path = tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        ready = self.tmp / "ready"
        conf = self.tmp / "securenfs.toml"
        # Devices allowed, so CREATE of NF4BLK/NF4CHR reaches the device numbers.
        conf.write_text(f"""[server]
listen = ["127.0.0.1:0"]
state_dir = "{self.tmp / 'state'}"

[[exports]]
path = "{self.share}"
pseudo = "{self.export}"
sec = ["sys"]
allow_devices = true

[[exports.clients]]
match = "*"
access = "rw"
squash = "root"
""")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "securenfs", "serve", "--config", str(conf), "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text().strip():
                self.port = int(ready.read_text().split()[1])
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError("server did not become ready")

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def fds(self) -> tuple[int, int]:
        """(descriptors of files in the export, all others).  The first are the open-file
        cache and the clients' opens, bounded by the cache; the others (sockets, pipes, the
        state store) must stay flat."""
        assert self.proc is not None
        base = f"/proc/{self.proc.pid}/fd"
        share = str(self.share.resolve())
        files = others = 0
        for name in os.listdir(base):
            try:
                target = os.readlink(f"{base}/{name}")
            except OSError:
                continue  # closed meanwhile
            if target.startswith(share):
                files += 1
            else:
                others += 1
        return files, others

    def log_lines(self) -> int:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return sum(1 for _ in f)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()



if __name__ == "__main__":
    write_corpus()
