"""The bounded table of RPCSEC_GSS contexts.

Bounds (all enforced when a context is added):

* ``max_contexts`` in all.  When full, expired contexts are reaped first; if none expired,
  the least recently used context is evicted.  Refusing instead would let clients that
  abandon contexts (every kernel client does on remount or credential refresh) lock every
  new client out; an evicted client merely gets RPCSEC_GSS_CREDPROBLEM on its next call and
  establishes a new context (RFC 2203 §5.3.3.3).
* ``max_per_peer`` per client IP address.  When a peer is at its cap, its own least recently
  used context is evicted, so one host cannot push out the contexts of others.
* Every context ends at its ticket's end (absolute expiry) and after ``idle_timeout`` seconds
  without a call; contexts still being established end after ``pending_timeout``.

Handles are 16 bytes from the OS random generator: unguessable, so a handle is no
capability an attacker can forge (and every call is still checked by its MIC).

The table lives on the event-loop thread; nothing here blocks or computes crypto.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from securenfs.rpcsec_gss.constants import HANDLE_BYTES
from securenfs.rpcsec_gss.context import CtxState, GssContext
from securenfs.rpcsec_gss.seqwindow import SeqWindow

log = logging.getLogger("securenfs.rpcsec_gss")


@dataclass(slots=True)
class TableLimits:
    max_contexts: int = 10000
    max_per_peer: int = 256
    idle_timeout: float = 3600.0
    pending_timeout: float = 60.0
    seq_window: int = 128


@dataclass(slots=True)
class TableStats:
    created: int = 0
    established: int = 0
    destroyed: int = 0
    expired: int = 0
    idle_reaped: int = 0
    evicted_global: int = 0
    evicted_peer: int = 0


class ContextTable:
    def __init__(self, limits: TableLimits | None = None, clock: Callable[[], float] = time.monotonic):
        self.limits = limits or TableLimits()
        self._clock = clock
        #: LRU order: least recently used first.
        self._ctx: OrderedDict[bytes, GssContext] = OrderedDict()
        self._per_peer: dict[str, OrderedDict[bytes, None]] = {}
        self.stats = TableStats()

    def __len__(self) -> int:
        return len(self._ctx)

    def __iter__(self) -> Iterator[GssContext]:
        return iter(list(self._ctx.values()))

    def peer_count(self, peer: str) -> int:
        p = self._per_peer.get(peer)
        return len(p) if p else 0

    # -- creation ---------------------------------------------------------------------------
    def new_pending(self, peer: str) -> GssContext:
        """Make room and add a context being established by ``peer``."""
        now = self._clock()
        self._make_room(peer, now)
        handle = os.urandom(HANDLE_BYTES)
        while handle in self._ctx:  # pragma: no cover - 2**-128
            handle = os.urandom(HANDLE_BYTES)
        ctx = GssContext(
            handle=handle,
            peer=peer,
            created=now,
            last_used=now,
            expires_at=now + self.limits.pending_timeout,
            window=SeqWindow(self.limits.seq_window),
        )
        self._ctx[handle] = ctx
        self._per_peer.setdefault(peer, OrderedDict())[handle] = None
        self.stats.created += 1
        return ctx

    def established(self, ctx: GssContext, lifetime: float, wall_now: float | None = None) -> None:
        now = self._clock()
        ctx.state = CtxState.ESTABLISHED
        ctx.expires_at = now + lifetime
        ctx.expires_wall = (wall_now if wall_now is not None else time.time()) + lifetime
        ctx.last_used = now
        self.stats.established += 1

    def _make_room(self, peer: str, now: float) -> None:
        limits = self.limits
        own = self._per_peer.get(peer)
        if own is not None and len(own) >= limits.max_per_peer:
            self.reap(now)
            own = self._per_peer.get(peer)
            if own is not None and len(own) >= limits.max_per_peer:
                victim = self._ctx[next(iter(own))]
                log.info("%s peer=%s: per-peer limit of %d contexts reached; evicting its least "
                         "recently used context (kerberos.max_contexts_per_peer)",
                         victim.label(), peer, limits.max_per_peer)
                self.remove(victim)
                self.stats.evicted_peer += 1
        if len(self._ctx) >= limits.max_contexts:
            self.reap(now)
            if len(self._ctx) >= limits.max_contexts:
                victim = next(iter(self._ctx.values()))
                log.warning("%s peer=%s: context table full (%d, kerberos.max_contexts); evicting "
                            "the least recently used context", victim.label(), victim.peer,
                            limits.max_contexts)
                self.remove(victim)
                self.stats.evicted_global += 1

    # -- lookup -----------------------------------------------------------------------------
    def get(self, handle: bytes) -> GssContext | None:
        return self._ctx.get(handle)

    def touch(self, ctx: GssContext) -> None:
        ctx.last_used = self._clock()
        ctx.calls += 1
        if ctx.state is not CtxState.DEAD:
            self._ctx.move_to_end(ctx.handle)
            own = self._per_peer.get(ctx.peer)
            if own is not None and ctx.handle in own:
                own.move_to_end(ctx.handle)

    def expired(self, ctx: GssContext, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        return now >= ctx.expires_at or now - ctx.last_used >= self._idle_limit(ctx)

    def _idle_limit(self, ctx: GssContext) -> float:
        return self.limits.pending_timeout if ctx.state is CtxState.PENDING else self.limits.idle_timeout

    # -- removal ----------------------------------------------------------------------------
    def remove(self, ctx: GssContext) -> None:
        if self._ctx.pop(ctx.handle, None) is None:
            return
        own = self._per_peer.get(ctx.peer)
        if own is not None:
            own.pop(ctx.handle, None)
            if not own:
                del self._per_peer[ctx.peer]
        ctx.state = CtxState.DEAD
        # Drop the key material now; calls in flight keep their own reference.
        ctx.gss = None

    def destroy(self, ctx: GssContext) -> None:
        self.remove(ctx)
        self.stats.destroyed += 1

    def reap(self, now: float | None = None) -> int:
        """Remove every context past its ticket's end or idle too long; returns how many."""
        now = self._clock() if now is None else now
        dead = [c for c in self._ctx.values() if self.expired(c, now)]
        for c in dead:
            if now >= c.expires_at:
                self.stats.expired += 1
                log.info("%s peer=%s: context ended (its Kerberos ticket expired); reaped", c.label(), c.peer)
            else:
                self.stats.idle_reaped += 1
                log.debug("%s peer=%s: context idle for %.0f s; reaped", c.label(), c.peer, now - c.last_used)
            self.remove(c)
        return len(dead)
