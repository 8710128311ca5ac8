"""The ID mapper: policy, backend chain, cache and request coalescing.

All public lookups are coroutines for the server's asyncio loop.  A cache hit is answered
on the loop without a thread hop; a miss runs the (blocking) backend chain in a thread
pool, and concurrent misses for the same key share one backend query (single flight),
so a burst of requests for one uncached name costs one LDAP search.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from idmap.backends.base import Backend
from idmap.cache import TtlCache
from idmap.config import IdmapConfig, MachinePolicy, UnmappedPolicy
from idmap.errors import BackendUnavailable, IdmapNotFound, IdmapUnavailable
from idmap.names import NameError_, Principal, parse_numeric, parse_principal, split_owner
from idmap.records import CacheState, GroupRec, Identity, Mapping, UserRec

log = logging.getLogger("idmap")

T = TypeVar("T")
Key = tuple[str, Hashable]


@dataclass(slots=True, frozen=True)
class _Found(Generic[T]):
    value: T
    source: str


@dataclass(slots=True, frozen=True)
class _UserGroups:
    user: UserRec
    groups: tuple[int, ...]


# What a lookup settles to: the answer (None = not found) and where it came from.
_Settled = tuple["_Found[Any] | None", CacheState]


class IdMapper:
    """Maps NFSv4 owner strings and Kerberos principals to POSIX ids and back.

    Outcomes: a returned value (found, or a documented policy answer such as the
    anonymous id), :class:`IdmapNotFound` (NFS4ERR_BADOWNER) or
    :class:`IdmapUnavailable` (NFS4ERR_DELAY).
    """

    def __init__(self, config: IdmapConfig, backends: Sequence[Backend], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.backends = tuple(backends)
        self._clock = clock
        self._cache: TtlCache[_Found[Any]] = TtlCache(config.cache, clock)
        self._executor = ThreadPoolExecutor(max_workers=config.max_inflight,
                                            thread_name_prefix="idmap")
        self._inflight: dict[Key, Future[_Settled]] = {}
        self._lock = threading.Lock()
        self._outage_since: float | None = None
        self._logged: OrderedDict[str, float] = OrderedDict()
        self.backend_lookups = 0
        self.coalesced = 0
        self._closed = False
        #: Called with the seconds each backend lookup (cache miss) took (the server's
        #: metrics, when on); runs on an idmap worker thread.
        self.on_backend_time: Callable[[float], None] | None = None

    # ------------------------------------------------------------------ plumbing

    def _log_once(self, level: int, key: str, msg: str, *args: object) -> None:
        """Log at most once a minute per key, so a busy client cannot flood the log."""
        now = self._clock()
        with self._lock:
            last = self._logged.get(key)
            if last is not None and now - last < 60.0:
                return
            self._logged[key] = now
            self._logged.move_to_end(key)
            while len(self._logged) > 10_000:
                self._logged.popitem(last=False)
        log.log(level, msg, *args)

    def _ask_chain(self, fn: Callable[[Backend], T | None]) -> _Found[T] | None:
        down: list[str] = []
        for backend in self.backends:
            try:
                value = fn(backend)
            except BackendUnavailable as exc:
                down.append(f"{backend.name}: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - a backend bug is not "not found"
                log.exception("idmap backend %s failed", backend.name)
                down.append(f"{backend.name}: internal error {exc!r}")
                continue
            if value is not None:
                if not down:
                    self._note_ok()
                return _Found(value, backend.name)
        if down:
            raise BackendUnavailable("; ".join(down))
        self._note_ok()
        return None

    def _note_ok(self) -> None:
        with self._lock:
            self._outage_since = None

    def _note_outage(self) -> None:
        with self._lock:
            if self._outage_since is None:
                self._outage_since = self._clock()

    def outage_seconds(self) -> float | None:
        """How long lookups have been failing for lack of a backend, or None."""
        with self._lock:
            since = self._outage_since
        return None if since is None else self._clock() - since

    def _job(self, key: Key, fn: Callable[[Backend], Any], fut: Future[_Settled]) -> None:
        try:
            with self._lock:
                self.backend_lookups += 1
            t0 = time.perf_counter()
            try:
                found = self._ask_chain(fn)
            except BackendUnavailable as exc:
                self._backend_time(t0)
                self._note_outage()
                stale = self._cache.stale(key)
                if stale is not None and stale.value is not None:
                    self._log_once(logging.WARNING, f"stale:{key}",
                                   "idmap: serving cached %s %r (age %.0fs) because %s",
                                   key[0], key[1], stale.age, exc)
                    fut.set_result((stale.value, CacheState.STALE))
                else:
                    fut.set_exception(IdmapUnavailable(f"{key[0]} {key[1]}", str(exc)))
                return
            self._backend_time(t0)
            if found is None:
                self._cache.put_negative(key)
            else:
                self._cache.put(key, found)
            fut.set_result((found, CacheState.MISS))
        except BaseException as exc:  # noqa: BLE001 - delivered to every waiter
            if not fut.done():
                fut.set_exception(exc)
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _backend_time(self, t0: float) -> None:
        observe = self.on_backend_time
        if observe is not None:
            observe(time.perf_counter() - t0)

    def _start(self, key: Key, fn: Callable[[Backend], Any]) -> Future[_Settled]:
        with self._lock:
            fut = self._inflight.get(key)
            if fut is not None:
                self.coalesced += 1
                return fut
            if self._closed:
                raise IdmapUnavailable(f"{key[0]} {key[1]}", "the mapper is closed")
            fut = Future()
            self._inflight[key] = fut
        self._executor.submit(self._job, key, fn, fut)
        return fut

    async def _lookup(self, key: Key, fn: Callable[[Backend], Any],
                      use_cache: bool) -> _Settled:
        if use_cache:
            hit = self._cache.get(key)
            if hit is not None:
                return hit.value, CacheState.HIT
        return await asyncio.wrap_future(self._start(key, fn))

    def _fallback_due(self) -> bool:
        """True once an outage has lasted longer than the NFS4ERR_DELAY window."""
        seconds = self.outage_seconds()
        return seconds is not None and seconds >= self.config.outage_delay

    # ------------------------------------------------------------------ principals

    def _anon_identity(self, principal: str, reason: str) -> Identity:
        cfg = self.config
        if cfg.unmapped_principal is UnmappedPolicy.REJECT:
            self._log_once(logging.WARNING, f"p:{principal}:{reason}",
                           "idmap: refusing principal %r: %s", principal, reason)
            raise IdmapNotFound(principal, reason)
        self._log_once(logging.WARNING, f"p:{principal}:{reason}",
                       "idmap: principal %r mapped to anonymous %d:%d: %s",
                       principal, cfg.anon_uid, cfg.anon_gid, reason)
        return Identity(cfg.anon_uid, cfg.anon_gid, (), None, "anon", reason=reason)

    def _machine_kind(self, p: Principal) -> str | None:
        m = self.config.machine
        if len(p.components) >= 2 and p.primary in m.services:
            return f"{p.primary}/ service principal"
        if len(p.components) == 1 and p.primary.endswith("$") and m.computer_accounts:
            return "computer account"
        return None

    async def principal_to_identity(self, principal: str, *,
                                    use_cache: bool = True) -> Identity:
        """The uid, primary gid and supplementary gids a Kerberos principal runs as.

        Numeric strings are never ids here (RFC 8881 §5.9 numeric owners are for
        AUTH_SYS only).  Foreign realms, principals with an instance and unknown users
        map to the anonymous identity with a log line (or are refused, by policy).
        """
        cfg = self.config
        try:
            p = parse_principal(principal)
        except NameError_ as exc:
            return self._anon_identity(principal, f"malformed principal: {exc}")
        if p.realm not in cfg.local_realms:
            hint = ""
            if p.realm.upper() in (r.upper() for r in cfg.local_realms):
                hint = " (realms are case-sensitive)"
            return self._anon_identity(
                principal, f"realm {p.realm} is not in local_realms "
                f"[{', '.join(cfg.local_realms)}]{hint}")
        kind = self._machine_kind(p)
        if kind is not None:
            return await self._machine_identity(principal, p, kind, use_cache)
        # A principal with an instance (alice/admin@R) is never mapped by its short name,
        # only by an explicit principal entry (principal attribute, static line).
        shortname = p.primary if p.instance is None else None
        return await self._user_identity(principal, shortname, use_cache)

    async def _user_identity(self, principal: str, shortname: str | None,
                             use_cache: bool) -> Identity:
        def ask(b: Backend) -> _UserGroups | None:
            user = b.user_by_principal(principal, shortname)
            return None if user is None else _UserGroups(user, b.groups_of(user))

        try:
            found, state = await self._lookup(("principal", principal), ask, use_cache)
        except IdmapUnavailable as exc:
            if self._fallback_due():
                return self._anon_identity(
                    principal, f"directory unreachable for more than "
                    f"{self.config.outage_delay:g}s ({exc.reason})")
            raise
        if found is None:
            names = ", ".join(b.name for b in self.backends)
            what = "no user for it" if shortname is not None else (
                "it has an instance and no backend maps it explicitly")
            return self._anon_identity(principal, f"{what} in backends [{names}]")
        ug: _UserGroups = found.value
        groups = ug.groups
        if len(groups) > self.config.max_groups:
            self._log_once(logging.WARNING, f"maxgroups:{principal}",
                           "idmap: %r is in %d groups; only the first %d (by gid) are used "
                           "(idmap.max_groups)", principal, len(groups), self.config.max_groups)
            groups = groups[: self.config.max_groups]
        return Identity(ug.user.uid, ug.user.gid, groups, ug.user.name, found.source, state)

    async def _machine_identity(self, principal: str, p: Principal, kind: str,
                                use_cache: bool) -> Identity:
        m = self.config.machine
        reason = f"{kind}, machine_principals.policy = {m.policy.value}"
        if m.policy is MachinePolicy.REJECT:
            self._log_once(logging.WARNING, f"m:{principal}", "idmap: refusing %r: %s",
                           principal, reason)
            raise IdmapNotFound(principal, reason)
        if m.policy is MachinePolicy.LOOKUP:
            shortname = p.primary if len(p.components) == 1 else None
            ident = await self._user_identity(principal, shortname, use_cache)
            self._log_once(logging.INFO, f"m:{principal}", "idmap: %r (%s) -> %d:%d (%s)",
                           principal, reason, ident.uid, ident.gid, ident.source)
            return ident
        if m.policy is MachinePolicy.ROOT:
            uid, gid = 0, 0
            level = logging.WARNING
        elif m.policy is MachinePolicy.ID:
            assert m.uid is not None and m.gid is not None
            uid, gid, level = m.uid, m.gid, logging.INFO
        else:
            uid, gid, level = self.config.anon_uid, self.config.anon_gid, logging.INFO
        self._log_once(level, f"m:{principal}", "idmap: machine principal %r runs as %d:%d (%s)",
                       principal, uid, gid, reason)
        return Identity(uid, gid, (), None, "machine", reason=reason)

    # ------------------------------------------------------------------ owner strings

    def _foreign(self, text: str, domain: str, anon_id: int) -> Mapping:
        reason = f"domain {domain!r} is not the NFSv4 domain {self.config.domain!r}"
        if self.config.foreign_owner is UnmappedPolicy.REJECT:
            self._log_once(logging.WARNING, f"o:{text}", "idmap: refusing %r: %s", text, reason)
            raise IdmapNotFound(text, reason)
        self._log_once(logging.WARNING, f"o:{text}", "idmap: %r mapped to anonymous id %d: %s",
                       text, anon_id, reason)
        return Mapping(anon_id, text, "anon", reason=reason)

    async def _name_to_id(self, text: str, kind: str, allow_numeric: bool,
                          use_cache: bool) -> Mapping:
        group = kind == "group"
        numeric = parse_numeric(text)
        if numeric is not None:
            # RFC 8881 §5.9: numeric strings are an AUTH_SYS convenience; the caller says
            # whether this request may use them (never for Kerberos by default).
            if not allow_numeric:
                raise IdmapNotFound(text, "numeric owner strings are not accepted for this "
                                    "request (Kerberos requests must use name@domain)")
            return Mapping(numeric, text, "numeric")
        try:
            owner = split_owner(text)
        except NameError_ as exc:
            raise IdmapNotFound(text, f"not a {kind}@domain string: {exc}") from None
        if owner.domain != self.config.domain:
            return self._foreign(text, owner.domain,
                                 self.config.anon_gid if group else self.config.anon_uid)
        name = owner.name

        def ask(b: Backend) -> UserRec | GroupRec | None:
            return b.group_by_name(name) if group else b.user_by_name(name)

        try:
            found, state = await self._lookup((f"{kind}-name", name), ask, use_cache)
        except IdmapUnavailable as exc:
            if self._fallback_due():
                raise IdmapNotFound(text, f"directory unreachable for more than "
                                    f"{self.config.outage_delay:g}s ({exc.reason})") from None
            raise
        if found is None:
            names = ", ".join(b.name for b in self.backends)
            self._log_once(logging.INFO, f"nf:{kind}:{text}", "idmap: %s %r not found in [%s]",
                           kind, text, names)
            raise IdmapNotFound(text, f"no {kind} {name!r} in backends [{names}]")
        rec = found.value
        ident = rec.gid if group else rec.uid
        return Mapping(ident, f"{rec.name}@{self.config.domain}", found.source, state)

    async def owner_to_uid(self, owner: str, *, allow_numeric: bool,
                           use_cache: bool = True) -> Mapping:
        """uid for an NFSv4 owner string (``alice@example.com``, or digits if allowed)."""
        return await self._name_to_id(owner, "user", allow_numeric, use_cache)

    async def group_to_gid(self, group: str, *, allow_numeric: bool,
                           use_cache: bool = True) -> Mapping:
        """gid for an NFSv4 owner_group string."""
        return await self._name_to_id(group, "group", allow_numeric, use_cache)

    async def _id_to_name(self, ident: int, kind: str, use_cache: bool) -> Mapping:
        group = kind == "group"

        def ask(b: Backend) -> UserRec | GroupRec | None:
            return b.group_by_gid(ident) if group else b.user_by_uid(ident)

        try:
            found, state = await self._lookup((f"{kind}-id", ident), ask, use_cache)
        except IdmapUnavailable as exc:
            # GETATTR must not block or say "nobody" during an outage: digits keep the
            # ownership visible and correct (RFC 8881 §5.9).
            return Mapping(ident, str(ident), "numeric", reason=exc.reason)
        if found is None:
            if self.config.numeric.emit_unmapped:
                return Mapping(ident, str(ident), "numeric", reason=f"no name for {kind} {ident}")
            return Mapping(ident, f"nobody@{self.config.domain}", "anon",
                           reason=f"no name for {kind} {ident}")
        rec = found.value
        return Mapping(ident, f"{rec.name}@{self.config.domain}", found.source, state)

    async def uid_to_owner(self, uid: int, *, use_cache: bool = True) -> Mapping:
        """Owner string for GETATTR; never raises (numeric string when there is no name)."""
        return await self._id_to_name(uid, "user", use_cache)

    async def gid_to_group(self, gid: int, *, use_cache: bool = True) -> Mapping:
        """owner_group string for GETATTR; never raises."""
        return await self._id_to_name(gid, "group", use_cache)

    # ------------------------------------------------------------------ admin

    def stats(self) -> dict[str, Any]:
        """Cache and backend counters for the admin API and the CLI."""
        with self._lock:
            lookups, coalesced = self.backend_lookups, self.coalesced
        outage = self.outage_seconds()
        return {
            "cache": self._cache.snapshot().as_dict(),
            "backend_lookups": lookups,
            "coalesced": coalesced,
            "outage_seconds": None if outage is None else round(outage, 1),
            "backends": {b.name: b.status() for b in self.backends},
        }

    def flush(self) -> None:
        """Drop every cached answer (like ``nfsidmap -c``)."""
        self._cache.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        for backend in self.backends:
            backend.close()


class SyncIdMapper:
    """Blocking facade over :class:`IdMapper` for the CLI, scripts and tests."""

    def __init__(self, mapper: IdMapper) -> None:
        self.mapper = mapper
        self._loop = asyncio.new_event_loop()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def principal_to_identity(self, principal: str, *, use_cache: bool = True) -> Identity:
        return self._run(self.mapper.principal_to_identity(principal, use_cache=use_cache))

    def owner_to_uid(self, owner: str, *, allow_numeric: bool,
                     use_cache: bool = True) -> Mapping:
        return self._run(self.mapper.owner_to_uid(owner, allow_numeric=allow_numeric,
                                                  use_cache=use_cache))

    def group_to_gid(self, group: str, *, allow_numeric: bool,
                     use_cache: bool = True) -> Mapping:
        return self._run(self.mapper.group_to_gid(group, allow_numeric=allow_numeric,
                                                  use_cache=use_cache))

    def uid_to_owner(self, uid: int, *, use_cache: bool = True) -> Mapping:
        return self._run(self.mapper.uid_to_owner(uid, use_cache=use_cache))

    def gid_to_group(self, gid: int, *, use_cache: bool = True) -> Mapping:
        return self._run(self.mapper.gid_to_group(gid, use_cache=use_cache))

    def stats(self) -> dict[str, Any]:
        return self.mapper.stats()

    def close(self) -> None:
        self.mapper.close()
        self._loop.close()
