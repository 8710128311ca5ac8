"""Per-peer bounds on log lines about what a client sent.

Every line about a peer's refused call or failed operation goes through one :class:`PeerLog`
owned by the RPC server.  Each peer (a client address) has a token bucket: ``burst`` lines at
once, refilled at ``rate`` lines per second.  A line beyond the bucket is counted under its
kind (an RPC refusal reason, an NFS4ERR name) instead of written, and the counts come out as
one summary line per peer at most every ``window`` seconds (at the peer's next line, or
from :meth:`PeerLog.flush_due`, which the RPC server runs every ``window`` seconds):

    peer 10.0.0.7: 12,345 similar lines suppressed in the last 60 s: BADXDR 9,000, INVAL 3,345

The first line of each distinct kind from a peer is always written, whatever the bucket
holds, so a new kind of trouble is never hidden behind an old one.  The peer table is
bounded (``max_peers``, least recently heard from evicted first, its summary written as it
goes), and so is each peer's set of kinds (``max_kinds``).

Pure bookkeeping with an injectable clock; the caller's logger writes the lines.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_RATE = 2.0
DEFAULT_BURST = 20
DEFAULT_WINDOW = 60.0
DEFAULT_MAX_PEERS = 4096
DEFAULT_MAX_KINDS = 64

summary_log = logging.getLogger("securenfs.peerlog")


@dataclass(slots=True)
class _Peer:
    tokens: float
    refilled: float
    window_start: float
    kinds: set[str] = field(default_factory=set)
    suppressed: dict[str, int] = field(default_factory=dict)


class PeerLog:
    """Token buckets for log lines, one per peer; see the module docstring."""

    def __init__(self, *, rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST, window: float = DEFAULT_WINDOW,
                 max_peers: int = DEFAULT_MAX_PEERS, max_kinds: int = DEFAULT_MAX_KINDS,
                 clock: Callable[[], float] = time.monotonic):
        if rate < 0 or burst < 1 or window <= 0 or max_peers < 1 or max_kinds < 1:
            raise ValueError("PeerLog: rate >= 0, burst >= 1, window > 0, max_peers >= 1 and max_kinds >= 1")
        self.rate = rate
        self.burst = burst
        self.window = window
        self.max_peers = max_peers
        self.max_kinds = max_kinds
        self._clock = clock
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        #: Lines written and suppressed since start (for status and tests).
        self.written = 0
        self.suppressed = 0

    def __len__(self) -> int:
        return len(self._peers)

    def log(self, logger: logging.Logger, level: int, peer: str, kind: str, fmt: str, *args: object,
            exc_info: bool = False) -> bool:
        """Write ``fmt % args`` at ``level`` unless ``peer`` has used up its lines; returns
        whether it was written.  ``kind`` names the class of line for the first-of-its-kind
        rule and the summary."""
        if not logger.isEnabledFor(level):
            return False
        if self.allow(peer, kind):
            logger.log(level, fmt, *args, exc_info=exc_info)
            return True
        return False

    def allow(self, peer: str, kind: str) -> bool:
        """Take a token for one line of ``kind`` about ``peer``; False when the line is to be
        suppressed (it is then counted for the peer's summary)."""
        now = self._clock()
        p = self._peers.get(peer)
        if p is None:
            p = _Peer(float(self.burst), now, now)
            self._peers[peer] = p
            while len(self._peers) > self.max_peers:
                old_peer, old = self._peers.popitem(last=False)
                self._summarise(old_peer, old, now)
        else:
            self._peers.move_to_end(peer)
            p.tokens = min(float(self.burst), p.tokens + (now - p.refilled) * self.rate)
            p.refilled = now
            if p.suppressed and now - p.window_start >= self.window:
                self._summarise(peer, p, now)
        first = kind not in p.kinds and len(p.kinds) < self.max_kinds
        if first:
            p.kinds.add(kind)
        if p.tokens >= 1.0:
            p.tokens -= 1.0
        elif not first:
            if not p.suppressed:
                p.window_start = now
            p.suppressed[kind] = p.suppressed.get(kind, 0) + 1
            self.suppressed += 1
            return False
        self.written += 1
        return True

    def flush_due(self) -> None:
        """Write the summaries whose window has passed (the RPC server calls this every
        ``window`` seconds, so a flood that stopped is still summarised promptly)."""
        now = self._clock()
        for name, p in list(self._peers.items()):
            if p.suppressed and now - p.window_start >= self.window:
                self._summarise(name, p, now)

    def flush(self, peer: str | None = None) -> None:
        """Write the pending summary of ``peer`` (all peers when None) now."""
        now = self._clock()
        names = [peer] if peer is not None else list(self._peers)
        for name in names:
            p = self._peers.get(name)
            if p is not None and p.suppressed:
                self._summarise(name, p, now)

    def _summarise(self, peer: str, p: _Peer, now: float) -> None:
        total = sum(p.suppressed.values())
        parts = ", ".join(f"{k} {n:,}" for k, n in sorted(p.suppressed.items(), key=lambda kv: -kv[1]))
        summary_log.warning("peer %s: %s similar lines suppressed in the last %.0f s: %s", peer, f"{total:,}",
                            max(now - p.window_start, 0.0), parts)
        self.written += 1
        p.suppressed = {}
        p.window_start = now
