"""IDM-* and LDAP-*: the NFSv4 domain, the directory, and one real lookup.

NFSv4 carries owners as "user@domain" strings (RFC 8881 §5.9); when server and client disagree
on the domain every file shows up as nobody:nobody.
"""

from __future__ import annotations

import dataclasses
import pwd
import socket
import time
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from preflight.context import RunContext
from preflight.registry import check
from preflight.result import Result, critical, error, ok, warning

if TYPE_CHECKING:
    from idmap.config import LdapConfig


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


def ldap_config(ctx: RunContext) -> LdapConfig:
    """The LDAP settings of the ID mapper ([idmap.ldap]: bind, TLS, schema, attributes), with
    the URIs and base the preflight was given; anonymous RFC 2307 when there is no table."""
    from idmap.config import LdapConfig

    s = ctx.settings
    timeout = min(s.peer_timeout * 2, s.timeout)
    if s.ldap is None:
        return LdapConfig(list(s.ldap_uris), s.ldap_base_dn, s.ldap_base_dn, s.ldap_base_dn, timeout=timeout)
    cfg = s.ldap
    if s.ldap_base_dn and s.ldap_base_dn != cfg.base:  # --base-dn given on the command line
        cfg = dataclasses.replace(cfg, base=s.ldap_base_dn, user_base=s.ldap_base_dn, group_base=s.ldap_base_dn)
    return dataclasses.replace(cfg, uris=list(s.ldap_uris or cfg.uris), timeout=min(cfg.timeout, timeout))


def _bind_remedy(cfg: LdapConfig) -> str:
    from idmap.config import BindMethod

    if cfg.bind is BindMethod.SIMPLE:
        return f"Check [idmap.ldap] bind_dn ({cfg.bind_dn}) and the password in bind_password_file."
    if cfg.bind is BindMethod.SASL_GSSAPI:
        return (f"Check [idmap.ldap] keytab ({cfg.keytab}) and sasl_principal, and that the LDAP server "
                "has a keytab for ldap/<its host name> (the host name in the URI).")
    return "The server refuses anonymous binds: set [idmap.ldap] bind to \"simple\" or \"sasl-gssapi\"."


@check("LDAP-006", "LdapBaseDnAnswers", requires=("LDAP-001",))
def base_dn(ctx: RunContext) -> Result:
    """The ID mapper's bind (anonymous, simple or SASL/GSSAPI, with its TLS settings) works and
    its search base exists on the first LDAP server."""
    if not ctx.settings.ldap_uris:
        return ok("LDAP-006", "no LDAP servers configured")
    cfg = ldap_config(ctx)
    if not cfg.base:
        return error("LDAP-006", "no LDAP search base configured", remedy="Set [idmap.ldap] base.")
    import ldap

    from idmap.backends.ldap import LdapBackend, _describe
    from idmap.errors import BackendUnavailable

    uri = cfg.uris[0]
    backend = LdapBackend(cfg)
    how = f"{cfg.bind.value} bind" + (f", {cfg.tls.value}" if cfg.tls.value != "none" else "")
    try:
        backend.probe_base(uri)
    except ldap.NO_SUCH_OBJECT:
        return error("LDAP-006", f"base {cfg.base} does not exist on {uri}",
                     remedy="Fix [idmap.ldap] base (see the server's namingContexts).")
    except (ldap.INVALID_CREDENTIALS, ldap.INAPPROPRIATE_AUTH, ldap.STRONG_AUTH_REQUIRED,
            ldap.AUTH_UNKNOWN, ldap.LOCAL_ERROR, ldap.INSUFFICIENT_ACCESS) as exc:
        return error("LDAP-006", f"{uri}: the {how} was refused: {_describe(exc)}", remedy=_bind_remedy(cfg))
    except BackendUnavailable as exc:
        return error("LDAP-006", f"{uri}: {exc}", remedy=_bind_remedy(cfg))
    except ldap.LDAPError as exc:
        return error("LDAP-006", f"{uri}: search of {cfg.base} ({how}) failed: {_describe(exc)}",
                     remedy="Check the server, [idmap.ldap] tls and ca_file, the bind and the base.")
    finally:
        backend.close()
    return ok("LDAP-006", f"base {cfg.base} answers on {uri} ({how})")


@check("IDM-003", "ProbeUserResolves", requires=("LDAP-006",))
def probe_user(ctx: RunContext) -> Result:
    """A configured known user resolves to a uid (through the ID mapper's LDAP lookup, with its
    schema, attributes and filters, when LDAP is configured; else the system)."""
    s = ctx.settings
    user = s.probe_user
    if not user:
        return ok("IDM-003", "no probe user configured; lookup not tested")
    if s.ldap_uris:
        from idmap.backends.ldap import LdapBackend
        from idmap.errors import BackendUnavailable

        cfg = ldap_config(ctx)
        backend = LdapBackend(cfg)
        short = user.split("@")[0]
        try:
            rec = backend.user_by_principal(user, short) if "@" in user else backend.user_by_name(user)
        except BackendUnavailable as exc:
            return error("IDM-003", f"LDAP lookup of {user} failed: {exc}")
        finally:
            backend.close()
        if rec is None:
            return error(
                "IDM-003",
                f"probe user {user} not found in LDAP under {cfg.user_base} ({cfg.schema.value} schema)",
                remedy="Check the user exists with the schema's object class and attributes "
                       "([idmap.ldap] schema, user_filter, attributes).",
            )
        return ok("IDM-003", f"probe user {user} resolves to uid {rec.uid}", uid=rec.uid)
    try:
        pw = pwd.getpwnam(user.split("@")[0])
    except KeyError:
        return error(
            "IDM-003",
            f"probe user {user} is unknown to the system (getpwnam)",
            remedy="Check nsswitch.conf and SSSD/winbind, or the probe user name.",
        )
    return ok("IDM-003", f"probe user {user} resolves to uid {pw.pw_uid}", uid=pw.pw_uid)
