"""The LDAP backend (python-ldap): RFC 2307, rfc2307bis and Active Directory profiles.

Every call is bounded by ``timeout`` (connect, bind and search).  Servers are tried in the
configured order; a server that fails is skipped for this call and the next is tried.
When every server has failed the backend is offline: calls fail at once with
:class:`BackendUnavailable` until the reconnect delay has passed, and the delay doubles
(with jitter) on each failed attempt up to ``reconnect_max``, so an outage costs the
callers no waiting and the directory no reconnect storm.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

import ldap
import ldap.sasl

from idmap import filters
from idmap.config import BindMethod, LdapConfig, Nesting, PrincipalLookup, TlsMode
from idmap.errors import BackendUnavailable
from idmap.records import GroupRec, UserRec

log = logging.getLogger("idmap.ldap")

# AD: LDAP_MATCHING_RULE_IN_CHAIN walks nested group membership on the server.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"
# Errors that mean "this server cannot answer now": try the next one.
_TRANSIENT = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.UNAVAILABLE,
              ldap.BUSY, ldap.TIMELIMIT_EXCEEDED, ldap.UNWILLING_TO_PERFORM)
_OR_CHUNK = 50  # member DNs per (|...) filter when walking nested groups
#: Numbers the backends of this process: each has its own private ccaches, because MEMORY
#: ccaches outlive their thread and thread idents are reused.
_BACKEND_IDS = itertools.count(1)

Entry = tuple[str, dict[str, list[bytes]]]


class LdapBackend:
    name = "ldap"

    def __init__(self, cfg: LdapConfig, *, max_connections: int = 16,
                 clock: Any = time.monotonic) -> None:
        self.cfg = cfg
        self.attrs = cfg.attributes
        self._backend_id = next(_BACKEND_IDS)
        self._clock = clock
        self._pool: queue.LifoQueue[tuple[int, Any]] = queue.LifoQueue(max_connections)
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._delay = cfg.reconnect_min
        self._online: bool | None = None
        self._last_error = ""
        self._server: str | None = None
        self._generation = 0  # bumped when connections must be dropped
        self.queries = 0

    # ------------------------------------------------------------------ connections

    def _connect(self, uri: str) -> Any:
        cfg = self.cfg
        conn = ldap.initialize(uri, bytes_mode=False)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)  # chasing referrals would bind elsewhere
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, cfg.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, cfg.timeout)
        if cfg.tls is not TlsMode.NONE:
            if cfg.ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, cfg.ca_file)
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT,
                            ldap.OPT_X_TLS_DEMAND if cfg.tls_require_cert
                            else ldap.OPT_X_TLS_NEVER)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        try:
            if cfg.tls is TlsMode.STARTTLS:
                conn.start_tls_s()
            if cfg.bind is BindMethod.SIMPLE:
                conn.simple_bind_s(cfg.bind_dn or "", cfg.bind_password or "")
            elif cfg.bind is BindMethod.SASL_GSSAPI:
                self._gssapi_bind(conn)
        except BaseException:
            conn.unbind_s()
            raise
        return conn

    def _gssapi_bind(self, conn: Any) -> None:
        """SASL/GSSAPI bind with credentials from the server's own keytab.

        A TGT is obtained from ``keytab`` into a private in-memory ccache, which is made the
        default of this thread only (gss_krb5_ccache_name), so the process-wide
        KRB5CCNAME and any user's tickets are never touched.
        """
        self.acquire_keytab_tgt()
        conn.sasl_interactive_bind_s("", ldap.sasl.gssapi())

    def acquire_keytab_tgt(self) -> str:
        """Fetch a TGT from the keytab into this thread's private ccache; return its name."""
        import gssapi
        import gssapi.raw

        # Per backend and thread: a ccache left by another backend (another principal) in a
        # reused thread ident would otherwise not match the principal asked for.
        ccache = f"MEMORY:securenfs-idmap-{os.getpid()}-{self._backend_id}-{threading.get_ident()}"
        try:
            name = (gssapi.Name(self.cfg.sasl_principal, gssapi.NameType.kerberos_principal)
                    if self.cfg.sasl_principal else None)
            creds = gssapi.Credentials(name=name, usage="initiate",
                                       store={"client_keytab": self.cfg.keytab,
                                              "ccache": ccache})
            _ = creds.lifetime  # inquiring makes MIT fetch the TGT from the keytab now
            gssapi.raw.krb5_ccache_name(ccache.encode())
        except gssapi.raw.misc.GSSError as exc:
            raise BackendUnavailable(
                f"cannot get Kerberos credentials from keytab {self.cfg.keytab}"
                + (f" for {self.cfg.sasl_principal}" if self.cfg.sasl_principal else "")
                + f": {exc.gen_message()}") from None
        return ccache

    def _checkout(self) -> tuple[int, Any] | None:
        try:
            gen, conn = self._pool.get_nowait()
        except queue.Empty:
            return None
        if gen != self._generation:
            self._discard(conn)
            return None
        return gen, conn

    def _checkin(self, gen: int, conn: Any) -> None:
        try:
            self._pool.put_nowait((gen, conn))
        except queue.Full:
            self._discard(conn)

    @staticmethod
    def _discard(conn: Any) -> None:
        try:
            conn.unbind_s()
        except ldap.LDAPError:
            pass

    # ------------------------------------------------------------------ searching

    def search(self, base: str, filterstr: str, attrlist: list[str]) -> list[Entry]:
        """One search with failover; raises BackendUnavailable when no server answers."""
        now = self._clock()
        with self._lock:
            if self._online is False and now < self._retry_at:
                raise BackendUnavailable(
                    f"every LDAP server is unreachable ({self._last_error}); "
                    f"next attempt in {self._retry_at - now:.1f}s"
                )
        errors: list[str] = []
        held = self._checkout()
        if held is not None:
            gen, conn = held
            try:
                result = self._search_on(conn, base, filterstr, attrlist)
            except _TRANSIENT as exc:
                self._discard(conn)
                errors.append(f"{self._server}: {_describe(exc)}")
            else:
                self._checkin(gen, conn)
                self._mark_online(self._server)
                return result
        for uri in self.cfg.uris:
            gen = self._generation
            try:
                conn = self._connect(uri)
                result = self._search_on(conn, base, filterstr, attrlist)
            except _TRANSIENT as exc:
                errors.append(f"{uri}: {_describe(exc)}")
                log.warning("LDAP server %s failed: %s; trying the next server",
                            uri, _describe(exc))
                continue
            except BackendUnavailable as exc:  # no Kerberos credentials for the bind
                errors.append(f"{uri}: {exc}")
                log.error("LDAP server %s: %s", uri, exc)
                continue
            except ldap.LDAPError as exc:
                # Bind refused, bad filter, TLS certificate rejected ...: the server is
                # reachable but cannot be used; this is not "not found".
                errors.append(f"{uri}: {_describe(exc)}")
                log.error("LDAP server %s: %s", uri, _describe(exc))
                continue
            self._checkin(gen, conn)
            self._mark_online(uri)
            return result
        self._mark_offline("; ".join(errors))
        raise BackendUnavailable("no LDAP server answered: " + "; ".join(errors))

    def _search_on(self, conn: Any, base: str, filterstr: str,
                   attrlist: list[str]) -> list[Entry]:
        self.queries += 1
        try:
            res = conn.search_ext_s(base, ldap.SCOPE_SUBTREE, filterstr, attrlist,
                                    timeout=self.cfg.timeout, sizelimit=self.cfg.size_limit)
        except ldap.NO_SUCH_OBJECT:
            return []
        except ldap.SIZELIMIT_EXCEEDED as exc:
            raise BackendUnavailable(
                f"search {filterstr} under {base} hit the size limit "
                f"({self.cfg.size_limit}); raise idmap.ldap.size_limit"
            ) from exc
        return [(dn, attrs) for dn, attrs in res if dn is not None]  # drop referrals

    def _mark_online(self, uri: str | None) -> None:
        with self._lock:
            if self._online is False:
                log.warning("LDAP is reachable again via %s", uri)
            self._online = True
            self._server = uri
            self._delay = self.cfg.reconnect_min

    def _mark_offline(self, error: str) -> None:
        with self._lock:
            delay = self._delay
            self._retry_at = self._clock() + delay * random.uniform(0.8, 1.2)
            self._delay = min(max(delay * 2, 0.1), self.cfg.reconnect_max)
            if self._online is not False:
                log.error("every LDAP server is unreachable (%s); serving cached entries, "
                          "retrying in %.1fs", error, delay)
            self._online = False
            self._last_error = error
            self._generation += 1

    # ------------------------------------------------------------------ records

    def _user_filter(self, assertion: str) -> str:
        return filters.conjunction(f"(objectClass={self.attrs.user_object_class})",
                                   assertion, self.cfg.user_filter)

    def _group_filter(self, assertion: str) -> str:
        return filters.conjunction(f"(objectClass={self.attrs.group_object_class})",
                                   assertion, self.cfg.group_filter)

    def _one(self, entries: list[Entry], what: str) -> Entry | None:
        if not entries:
            return None
        if len(entries) > 1:
            # An ambiguous name must not pick an arbitrary account.
            log.error("%s matches %d LDAP entries (%s); treated as not found",
                      what, len(entries), ", ".join(dn for dn, _ in entries[:3]))
            return None
        return entries[0]

    def _to_user(self, entry: Entry | None, what: str) -> UserRec | None:
        if entry is None:
            return None
        dn, attrs = entry
        a = self.attrs
        name = _first(attrs, a.user_name)
        uid = _int(attrs, a.uid_number)
        gid = _int(attrs, a.gid_number)
        if name is None or uid is None or gid is None:
            log.warning("LDAP entry %s (%s) lacks %s/%s/%s; ignored", dn, what,
                        a.user_name, a.uid_number, a.gid_number)
            return None
        return UserRec(name, uid, gid, ref=dn)

    def _user_attrs(self) -> list[str]:
        return [self.attrs.user_name, self.attrs.uid_number, self.attrs.gid_number]

    def user_by_name(self, name: str) -> UserRec | None:
        f = self._user_filter(filters.equality(self.attrs.user_name, name))
        return self._to_user(self._one(self.search(self.cfg.user_base, f, self._user_attrs()),
                                       f"user {name!r}"), name)

    def user_by_uid(self, uid: int) -> UserRec | None:
        f = self._user_filter(filters.equality(self.attrs.uid_number, str(uid)))
        entries = self.search(self.cfg.user_base, f, self._user_attrs())
        # Several names for one uid happen (aliases); the lowest DN wins, deterministically.
        entries.sort(key=lambda e: e[0].lower())
        return self._to_user(entries[0] if entries else None, f"uid {uid}")

    def user_by_principal(self, principal: str, shortname: str | None) -> UserRec | None:
        mode = self.cfg.principal_lookup
        if mode is not PrincipalLookup.SHORTNAME:
            f = self._user_filter(filters.equality(self.attrs.principal, principal))
            user = self._to_user(self._one(self.search(self.cfg.user_base, f,
                                                       self._user_attrs()),
                                           f"principal {principal!r}"), principal)
            if user is not None or mode is PrincipalLookup.ATTRIBUTE:
                return user
        return self.user_by_name(shortname) if shortname is not None else None

    def _to_group(self, entry: Entry | None, what: str) -> GroupRec | None:
        if entry is None:
            return None
        dn, attrs = entry
        name = _first(attrs, self.attrs.group_name)
        gid = _int(attrs, self.attrs.group_gid_number)
        if name is None or gid is None:
            log.warning("LDAP group %s (%s) lacks %s/%s; ignored", dn, what,
                        self.attrs.group_name, self.attrs.group_gid_number)
            return None
        return GroupRec(name, gid)

    def group_by_name(self, name: str) -> GroupRec | None:
        f = self._group_filter(filters.equality(self.attrs.group_name, name))
        attrs = [self.attrs.group_name, self.attrs.group_gid_number]
        return self._to_group(self._one(self.search(self.cfg.group_base, f, attrs),
                                        f"group {name!r}"), name)

    def group_by_gid(self, gid: int) -> GroupRec | None:
        f = self._group_filter(filters.equality(self.attrs.group_gid_number, str(gid)))
        entries = self.search(self.cfg.group_base, f,
                              [self.attrs.group_name, self.attrs.group_gid_number])
        entries.sort(key=lambda e: e[0].lower())
        return self._to_group(entries[0] if entries else None, f"gid {gid}")

    def groups_of(self, user: UserRec) -> tuple[int, ...]:
        a = self.attrs
        gids: set[int] = {user.gid}
        attrs = [a.group_gid_number]
        if not a.member_is_dn:
            f = self._group_filter(filters.equality(a.member, user.name))
            gids.update(_gids(self.search(self.cfg.group_base, f, attrs), a.group_gid_number))
            return tuple(sorted(gids))
        if user.ref is None:
            return tuple(sorted(gids))
        if self.cfg.nesting is Nesting.IN_CHAIN:
            f = self._group_filter(f"({a.member}:{IN_CHAIN_RULE}:={filters.escape(user.ref)})")
            gids.update(_gids(self.search(self.cfg.group_base, f, attrs), a.group_gid_number))
            return tuple(sorted(gids))
        depth = self.cfg.nesting_level if self.cfg.nesting is Nesting.CLIENT else 0
        seen: set[str] = {user.ref.lower()}
        frontier = [user.ref]
        # Level 0 = direct groups; each further level adds the groups those are members
        # of.  `seen` makes membership cycles (A in B in A) terminate.
        for _level in range(depth + 1):
            found: list[str] = []
            for chunk in _chunks(frontier, _OR_CHUNK):
                f = self._group_filter(filters.disjunction(
                    *(filters.equality(a.member, dn) for dn in chunk)))
                for dn, entry_attrs in self.search(self.cfg.group_base, f, attrs):
                    gid = _int(entry_attrs, a.group_gid_number)
                    if gid is not None:
                        gids.add(gid)
                    if dn.lower() not in seen:
                        seen.add(dn.lower())
                        found.append(dn)
            if not found:
                break
            frontier = found
        return tuple(sorted(gids))

    def status(self) -> dict[str, object]:
        with self._lock:
            state: dict[str, object] = {
                "online": self._online, "server": self._server, "queries": self.queries,
                "schema": self.cfg.schema.value,
            }
            if self._online is False:
                state["error"] = self._last_error
                state["retry_in"] = round(max(0.0, self._retry_at - self._clock()), 1)
        return state

    def probe_base(self, uri: str) -> None:
        """Connect, bind and read the search base on ``uri`` exactly as lookups do (the
        preflight's LDAP-006).  Raises ldap.LDAPError, or BackendUnavailable when the
        SASL/GSSAPI bind has no Kerberos credentials."""
        conn = self._connect(uri)
        try:
            conn.search_ext_s(self.cfg.base, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"],
                              timeout=self.cfg.timeout)
        finally:
            conn.unbind_s()

    def close(self) -> None:
        while True:
            try:
                _, conn = self._pool.get_nowait()
            except queue.Empty:
                return
            self._discard(conn)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ldap.LDAPError) and exc.args and isinstance(exc.args[0], dict):
        info = exc.args[0]
        text = info.get("desc", type(exc).__name__)
        if info.get("info"):
            text += f" ({info['info']})"
        return str(text)
    return str(exc) or type(exc).__name__


def _first(attrs: dict[str, list[bytes]], name: str) -> str | None:
    for key, values in attrs.items():
        if key.lower() == name.lower() and values:
            try:
                return values[0].decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def _int(attrs: dict[str, list[bytes]], name: str) -> int | None:
    text = _first(attrs, name)
    if text is None or not text.isdigit() or int(text) > 2**32 - 1:
        return None
    return int(text)


def _gids(entries: list[Entry], attr: str) -> set[int]:
    return {gid for _, attrs in entries if (gid := _int(attrs, attr)) is not None}


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
