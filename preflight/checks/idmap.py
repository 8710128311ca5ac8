"""IDM-* and LDAP-*: the NFSv4 domain, the directory, and one real lookup.

NFSv4 carries owners as "user@domain" strings (RFC 8881 §5.9); when server and client disagree
on the domain every file shows up as nobody:nobody.
"""

from __future__ import annotations

import pwd
import socket
import time
from urllib.parse import urlparse

from preflight.context import RunContext
from preflight.registry import check
from preflight.result import Result, critical, error, ok, warning


@check("IDM-001", "Nfsv4DomainSet")
def domain_set(ctx: RunContext) -> Result:
    """The NFSv4 ID-mapping domain is set and matches the DNS domain or the realm."""
    d = ctx.settings.idmap_domain.strip().lower()
    fqdn = ctx.fqdn
    dns_domain = fqdn.split(".", 1)[1] if "." in fqdn else ""
    realm = ctx.realm
    if not d or d == "localdomain":
        return critical(
            "IDM-001",
            "the NFSv4 ID-mapping domain is not set"
            if not d
            else "the NFSv4 ID-mapping domain is 'localdomain'",
            "Owners are sent as user@domain; with no shared domain clients show nobody:nobody.",
            f"Set [idmap] domain = {dns_domain or realm.lower() or 'example.com'} and the same "
            "Domain = in /etc/idmapd.conf on every client.",
        )
    if d not in {dns_domain, realm.lower()}:
        return warning(
            "IDM-001",
            f"NFSv4 domain '{d}' is neither the DNS domain '{dns_domain}' nor the realm '{realm}'",
            "Clients without an explicit Domain = use their DNS domain.",
            f"Set Domain = {d} in /etc/idmapd.conf on every client (or publish "
            f'_nfsv4idmapdomain TXT "{d}").',
            domain=d,
            dns_domain=dns_domain,
        )
    return ok("IDM-001", f"NFSv4 domain is {d}", domain=d)


@check("IDM-002", "PrincipalRealmAccepted")
def realm_accepted(ctx: RunContext) -> Result:
    """Principals of the server's realm are mapped to users (the realm is a local realm)."""
    realm = ctx.realm
    local = ctx.settings.local_realms
    if not local:
        return ok(
            "IDM-002",
            f"principals of {realm or 'the default realm'} map to users (default local realm)",
        )
    if realm and realm not in local:
        return error(
            "IDM-002",
            f"realm {realm} is not among the local realms ({', '.join(local)})",
            "Kerberos works, but every user of this realm is mapped to the anonymous user.",
            f"Add {realm} to [idmap] local_realms.",
            realm=realm,
            local_realms=local,
        )
    return ok("IDM-002", f"realm {realm} is a local realm")


def _host_port(uri: str) -> tuple[str, int]:
    u = urlparse(uri)
    port = u.port or (636 if u.scheme == "ldaps" else 389)
    return u.hostname or "localhost", port


@check("LDAP-001", "LdapReachable")
def ldap_reachable(ctx: RunContext) -> Result:
    """Every configured LDAP server accepts a TCP connection."""
    uris = ctx.settings.ldap_uris
    if not uris:
        return ok("LDAP-001", "no LDAP servers configured (identities come from the system)")
    lines, tried, dead = [], [], []
    for uri in uris:
        host, port = _host_port(uri)
        where = f"{uri} (TCP {host}:{port})"
        tried.append(where)
        t0 = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=ctx.settings.peer_timeout):
                lines.append(f"{where}: connected in {(time.monotonic() - t0) * 1000:.1f} ms")
        except OSError as exc:
            why = exc.strerror or str(exc) or f"no answer within {ctx.settings.peer_timeout:g} s"
            lines.append(f"{where}: {why}")
            dead.append((where, host, port, why))
    detail = "\n".join(lines)
    if len(dead) == len(uris):
        (where, _, _, why), *_ = dead
        more = f" (and {len(dead) - 1} more, see detail)" if len(dead) > 1 else ""
        ports = ", ".join(dict.fromkeys(f"{h}:{p}" for _, h, p, _ in dead))
        return critical(
            "LDAP-001",
            f"no LDAP server answered: {where}: {why}{more}",
            detail,
            f"Check [idmap.ldap] uris, that the LDAP server runs, and that TCP {ports} is open "
            "from this host.",
            tried=tried,
        )
    if dead:
        return warning(
            "LDAP-001",
            f"{len(dead)} of {len(uris)} LDAP servers did not answer: "
            + ", ".join(f"{where}: {why}" for where, _, _, why in dead),
            detail,
            "Remove or fix the dead servers.",
            tried=tried,
        )
    return ok("LDAP-001", f"{len(uris)} LDAP server(s) reachable: {', '.join(tried)}", detail)


def _ldap_conn(ctx: RunContext, uri: str):  # type: ignore[no-untyped-def]
    import ldap

    conn = ldap.initialize(uri)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, ctx.settings.peer_timeout)
    conn.set_option(ldap.OPT_TIMEOUT, ctx.settings.peer_timeout)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.simple_bind_s("", "")
    return conn


@check("LDAP-006", "LdapBaseDnAnswers", requires=("LDAP-001",))
def base_dn(ctx: RunContext) -> Result:
    """The configured search base exists on the LDAP server."""
    s = ctx.settings
    if not s.ldap_uris:
        return ok("LDAP-006", "no LDAP servers configured")
    if not s.ldap_base_dn:
        return error("LDAP-006", "no LDAP base DN configured", remedy="Set [idmap.ldap] base_dn.")
    import ldap

    try:
        conn = _ldap_conn(ctx, s.ldap_uris[0])
        conn.search_s(s.ldap_base_dn, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
        conn.unbind_s()
    except ldap.NO_SUCH_OBJECT:
        return error(
            "LDAP-006",
            f"base DN {s.ldap_base_dn} does not exist on {s.ldap_uris[0]}",
            remedy="Fix [idmap.ldap] base_dn (see the server's namingContexts).",
        )
    except ldap.LDAPError as exc:
        return error(
            "LDAP-006",
            f"LDAP search of {s.ldap_base_dn} failed: {exc}",
            remedy="Check the server, the bind and the base DN.",
        )
    return ok("LDAP-006", f"base DN {s.ldap_base_dn} answers")


@check("IDM-003", "ProbeUserResolves", requires=("LDAP-006",))
def probe_user(ctx: RunContext) -> Result:
    """A configured known user resolves to a uid (through LDAP when configured, else the system)."""
    s = ctx.settings
    user = s.probe_user
    if not user:
        return ok("IDM-003", "no probe user configured; lookup not tested")
    if s.ldap_uris:
        import ldap
        from ldap.filter import escape_filter_chars

        try:
            conn = _ldap_conn(ctx, s.ldap_uris[0])
            u = escape_filter_chars(user.split("@")[0])
            found = conn.search_s(
                s.ldap_base_dn,
                ldap.SCOPE_SUBTREE,
                f"(&(objectClass=posixAccount)(uid={u}))",
                ["uidNumber", "gidNumber"],
            )
            conn.unbind_s()
        except ldap.LDAPError as exc:
            return error("IDM-003", f"LDAP lookup of {user} failed: {exc}")
        entries = [e for e in found if e[0]]
        if not entries:
            return error(
                "IDM-003",
                f"probe user {user} not found in LDAP under {s.ldap_base_dn}",
                remedy="Check the user exists and has the posixAccount object class.",
            )
        attrs = entries[0][1]
        uid = attrs.get("uidNumber", [b"?"])[0].decode()
        return ok("IDM-003", f"probe user {user} resolves to uid {uid}", uid=uid)
    try:
        pw = pwd.getpwnam(user.split("@")[0])
    except KeyError:
        return error(
            "IDM-003",
            f"probe user {user} is unknown to the system (getpwnam)",
            remedy="Check nsswitch.conf and SSSD/winbind, or the probe user name.",
        )
    return ok("IDM-003", f"probe user {user} resolves to uid {pw.pw_uid}", uid=pw.pw_uid)
