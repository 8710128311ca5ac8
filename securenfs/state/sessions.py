"""Sessions, slot tables and the reply cache (RFC 8881 §2.10.6).

Each slot remembers the last sequence id, a digest of that request and, when it was cached,
the full encoded COMPOUND reply, so a retry gets the byte-identical answer.  A retry that
arrives while the original is still running waits for the original's reply instead of
running twice.  A different request with the same slot and sequence id is a false retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error

if TYPE_CHECKING:
    from securenfs.state.clients import Client


class WatchedConnection(Protocol):
    """What the session table needs of a transport connection: its id, a place to note that
    it is watched, and a callback when it closes."""

    @property
    def id(self) -> int: ...
    @property
    def data(self) -> dict[str, Any]: ...
    def on_close(self, cb: Callable[[Any], None]) -> None: ...


class ChannelLimits(Protocol):
    """The channel_attrs4 fields a client asks for that the session layer reads (RFC 8881 §18.36)."""

    @property
    def maxrequestsize(self) -> int: ...
    @property
    def maxresponsesize(self) -> int: ...
    @property
    def maxresponsesize_cached(self) -> int: ...
    @property
    def maxoperations(self) -> int: ...
    @property
    def maxrequests(self) -> int: ...


@dataclass(slots=True, frozen=True)
class Channel:
    """A channel's granted limits (RFC 8881 §18.36.3); CREATE_SESSION turns it into channel_attrs4
    (no header padding, no RDMA)."""

    maxrequestsize: int
    maxresponsesize: int
    maxresponsesize_cached: int
    maxoperations: int
    maxrequests: int


@dataclass(slots=True, frozen=True)
class ServerLimits:
    """What the server grants at most in CREATE_SESSION (RFC 8881 §18.36.3)."""

    max_slots: int = 64
    max_operations: int = 64
    max_request: int = 1049600  # 1 MiB of WRITE data plus headers
    max_response: int = 1049600
    max_response_cached: int = 16384


#: The smallest COMPOUND request that can exist on a session, RPC header included (RFC 8881
#: §18.36.3 counts "the RPC headers (including security flavor credentials and verifiers)"):
#: an RPC call header with AUTH_NONE (xid, CALL, rpcvers, prog, vers, proc, null credential and
#: verifier: 40 bytes), an empty tag, minorversion and op count (12), and SEQUENCE4args with
#: its op number (36).  A fore channel that cannot carry it is NFS4ERR_TOOSMALL.
MIN_SEQUENCE_REQUEST = 40 + 12 + 36
#: The smallest reply: RPC reply header (xid, REPLY, MSG_ACCEPTED, null verifier, SUCCESS: 24),
#: status, empty tag and count (12), and SEQUENCE4res with op number and status (8 + 36).
MIN_SEQUENCE_REPLY = 24 + 12 + 8 + 36
#: The same for the backchannel: a CB_COMPOUND call holding CB_SEQUENCE (RPC call header 40,
#: tag, minorversion, callback_ident and count 16, CB_SEQUENCE4args with an empty referring
#: call list 40) and its reply (24, status, tag and count 12, CB_SEQUENCE4res 8 + 32).
MIN_CB_SEQUENCE_REQUEST = 40 + 16 + 40
MIN_CB_SEQUENCE_REPLY = 24 + 12 + 8 + 32


#: Requests up to this size are digested whole; larger ones (WRITE data) by their length and
#: a bounded head and tail, so a 1 MiB WRITE does not cost a megabyte of hashing on the event
#: loop for every SEQUENCE.  False-retry detection is a MAY (RFC 8881 §2.10.6.1.3.1); a retry
#: that differs only in the middle of a large WRITE payload is the one case this misses, and the
#: head holds every operation's header and the stateid, so any change to the operations is seen.
_DIGEST_WHOLE = 64 * 1024
_DIGEST_EDGE = 8 * 1024


def digest(data: bytes | memoryview) -> bytes:
    n = len(data)
    if n <= _DIGEST_WHOLE:
        return hashlib.blake2b(data, digest_size=16).digest()
    h = hashlib.blake2b(n.to_bytes(8, "big"), digest_size=16)
    h.update(data[:_DIGEST_EDGE])
    h.update(data[n - _DIGEST_EDGE:])
    return h.digest()


@dataclass(slots=True, eq=False)
class Slot:
    seqid: int = 0
    digest: bytes = b""
    reply: bytes | None = None
    #: Set while the request holding this slot is running.
    pending: asyncio.Future[bytes | None] | None = None


class Replay:
    """What SEQUENCE found on the slot."""

    NEW = 0
    RETRY = 1


@dataclass(slots=True, eq=False)
class Session:
    sessionid: bytes
    client: Client
    fore: Channel
    back: Channel
    flags: int
    cb_program: int
    #: callback_sec_parms4 as decoded: recorded only, no callback is sent.
    cb_sec: Sequence[object]
    slots: list[Slot] = field(default_factory=list)
    #: Connection ids bound to the fore channel (RFC 8881 §2.10.3.1).
    conns: set[int] = field(default_factory=set)
    back_conns: set[int] = field(default_factory=set)
    dead: bool = False

    def destroy(self) -> None:
        self.dead = True
        for s in self.slots:
            if s.pending is not None and not s.pending.done():
                s.pending.set_result(None)

    @property
    def highest_slotid(self) -> int:
        return len(self.slots) - 1

    def begin(self, slotid: int, seqid: int, request: bytes | memoryview) -> tuple[int, Slot]:
        """Check the slot for a new request or a retry (RFC 8881 §2.10.6.1)."""
        if slotid >= len(self.slots):
            raise Nfs4Error(Stat.BADSLOT, f"slot {slotid} beyond highest slot {len(self.slots) - 1}")
        slot = self.slots[slotid]
        if seqid == slot.seqid:
            if slot.digest and digest(request) != slot.digest:
                raise Nfs4Error(Stat.SEQ_FALSE_RETRY, f"slot {slotid} seqid {seqid}: a different request")
            if slot.pending is None and slot.reply is None:
                raise Nfs4Error(Stat.RETRY_UNCACHED_REP, f"slot {slotid} seqid {seqid} was not cached")
            return Replay.RETRY, slot
        if seqid != (slot.seqid + 1) & 0xFFFFFFFF:
            raise Nfs4Error(Stat.SEQ_MISORDERED, f"slot {slotid}: seqid {seqid}, expected {slot.seqid + 1}")
        if slot.pending is not None and not slot.pending.done():
            # The client reused a slot whose previous request has not been answered.
            raise Nfs4Error(Stat.SEQ_MISORDERED, f"slot {slotid} still busy")
        slot.seqid = seqid
        slot.digest = digest(request)
        slot.reply = None
        slot.pending = asyncio.get_running_loop().create_future()
        return Replay.NEW, slot

    @staticmethod
    def finish(slot: Slot, reply: bytes | None) -> None:
        slot.reply = reply
        if slot.pending is not None and not slot.pending.done():
            slot.pending.set_result(reply)
        slot.pending = None


def _check_channel(which: str, asked: ChannelLimits, min_request: int, min_reply: int, op: str) -> None:
    if asked.maxrequestsize < min_request:
        raise Nfs4Error(Stat.TOOSMALL, f"{which} channel ca_maxrequestsize {asked.maxrequestsize} cannot carry "
                        f"a {op} request ({min_request} bytes)")
    if asked.maxresponsesize < min_reply:
        raise Nfs4Error(Stat.TOOSMALL, f"{which} channel ca_maxresponsesize {asked.maxresponsesize} cannot carry "
                        f"a {op} reply ({min_reply} bytes)")
    if asked.maxoperations < 1 or asked.maxrequests < 1:
        raise Nfs4Error(Stat.TOOSMALL, f"{which} channel allows no operation or no request")


class SessionTable:
    def __init__(self, limits: ServerLimits | None = None):
        self.limits = limits or ServerLimits()
        self._by_id: dict[bytes, Session] = {}
        #: Sessions bound to each connection (either channel), so a closing connection finds
        #: its own sessions without a walk over every session of every client.
        self._by_conn: dict[int, set[Session]] = {}

    def get(self, sessionid: bytes) -> Session:
        s = self._by_id.get(bytes(sessionid))
        if s is None or s.dead:
            raise Nfs4Error(Stat.BADSESSION, "session unknown")
        return s

    def __len__(self) -> int:
        return len(self._by_id)

    def negotiate(self, asked: ChannelLimits) -> Channel:
        """The fore channel the server grants (RFC 8881 §18.36.3): each value lowered to the
        server's limit, never raised.  NFS4ERR_TOOSMALL only when the client's values cannot
        carry a SEQUENCE request or reply, or allow no operation or no slot.  Any
        ca_maxresponsesize_cached is granted (up to the limit), also 0 as the Linux client
        sends it: replies that do not fit are not cached, and sa_cachethis on them gets
        NFS4ERR_REP_TOO_BIG_TO_CACHE (§2.10.6.4), on SEQUENCE itself when even its reply
        does not fit."""
        lim = self.limits
        _check_channel("fore", asked, MIN_SEQUENCE_REQUEST, MIN_SEQUENCE_REPLY, "SEQUENCE")
        return Channel(
            min(asked.maxrequestsize, lim.max_request),
            min(asked.maxresponsesize, lim.max_response),
            min(asked.maxresponsesize_cached, lim.max_response_cached),
            min(asked.maxoperations, lim.max_operations),
            min(asked.maxrequests, lim.max_slots),
        )

    @staticmethod
    def check_back(asked: ChannelLimits) -> None:
        """The backchannel must be able to carry a CB_SEQUENCE call and its reply
        (NFS4ERR_TOOSMALL otherwise, RFC 8881 §18.36.3)."""
        _check_channel("back", asked, MIN_CB_SEQUENCE_REQUEST, MIN_CB_SEQUENCE_REPLY, "CB_SEQUENCE")

    def create(self, client: Client, fore: Channel, back: Channel, flags: int, cb_program: int,
               cb_sec: Sequence[object], conn_id: int | None) -> Session:
        while True:
            sid = secrets.token_bytes(16)
            if sid not in self._by_id:
                break
        s = Session(sid, client, fore, back, flags, cb_program, cb_sec, [Slot() for _ in range(fore.maxrequests)])
        self._by_id[sid] = s
        if conn_id is not None:
            self.bind(s, conn_id)
        client.sessions[sid] = s
        return s

    def bind(self, s: Session, conn_id: int, back: bool = False) -> None:
        """Bind a connection to the session's fore (or back) channel (RFC 8881 §2.10.3.1)."""
        (s.back_conns if back else s.conns).add(conn_id)
        self._by_conn.setdefault(conn_id, set()).add(s)

    def destroy(self, s: Session) -> None:
        s.destroy()
        self._by_id.pop(s.sessionid, None)
        s.client.sessions.pop(s.sessionid, None)
        for conn_id in s.conns | s.back_conns:
            bound = self._by_conn.get(conn_id)
            if bound is not None:
                bound.discard(s)
                if not bound:
                    del self._by_conn[conn_id]

    def forget_client(self, client: Client) -> None:
        for s in list(client.sessions.values()):
            self.destroy(s)

    def watch(self, conn: WatchedConnection | None) -> None:
        """Forget a connection's session bindings when it closes (once per connection)."""
        if conn is None or conn.data.get("nfs4-watch"):
            return
        conn.data["nfs4-watch"] = True
        conn.on_close(lambda c: self.connection_closed(c.id))

    def connection_closed(self, conn_id: int) -> None:
        for s in self._by_conn.pop(conn_id, ()):
            s.conns.discard(conn_id)
            s.back_conns.discard(conn_id)

    def bound_connections(self) -> int:
        """How many connections have a session bound (the admin view; tests)."""
        return len(self._by_conn)
