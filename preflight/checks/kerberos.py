"""KRB-* and KDC-001: krb5.conf and the KDCs it points at."""

from __future__ import annotations

import threading

from keytabs.enctypes import AES, enctype_name, parse_enctype_list
from preflight.context import RunContext
from preflight.kdcping import KdcAnswer, ping_kdc
from preflight.krb5conf import Krb5Conf, load_krb5_conf
from preflight.registry import check
from preflight.resolver import lookup, make_resolver
from preflight.result import Result, critical, error, ok, warning
from preflight.settings import split_host_port


def krb5_conf(ctx: RunContext) -> Krb5Conf:
    return ctx.memo("krb5conf", lambda: load_krb5_conf(ctx.settings.krb5_conf_path()))


@check("KRB-001", "Krb5ConfDefaultRealm")
def default_realm(ctx: RunContext) -> Result:
    """krb5.conf parses and names the realm the service principals live in."""
    conf = krb5_conf(ctx)
    path = ctx.settings.krb5_conf_path()
    if not conf.ok:
        return critical(
            "KRB-001",
            "krb5.conf cannot be read",
            conf.error,
            f"Fix {path} at the place named above (see krb5.conf(5)).",
        )
    dr = conf.default_realm
    if not dr:
        return critical(
            "KRB-001",
            f"{path} sets no default_realm",
            "Tools and libraries fail with 'Configuration file does not specify default realm'.",
            f"Add under [libdefaults] in {path}: default_realm = {ctx.settings.realm or 'EXAMPLE.COM'}",
        )
    if dr != dr.upper():
        return warning(
            "KRB-001",
            f"default_realm {dr} is not upper case",
            remedy="Realm names are case-sensitive and conventionally upper case; check it is right.",
        )
    if ctx.settings.realm and ctx.settings.realm != dr:
        return warning(
            "KRB-001",
            f"default_realm is {dr} but the service principals are in {ctx.settings.realm}",
            remedy=f"Set default_realm = {ctx.settings.realm} in {path}, or fix the principals.",
        )
    return ok("KRB-001", f"default realm {dr} ({path})", realm=dr)


@check("KRB-004", "PermittedEnctypesIncludeAes", requires=("KRB-001",))
def permitted_enctypes(ctx: RunContext) -> Result:
    """krb5.conf enctype lists must keep AES; weak crypto should not be allowed."""
    conf = krb5_conf(ctx)
    for key in ("permitted_enctypes", "default_tgs_enctypes", "default_tkt_enctypes"):
        v = conf.libdefault(key)
        if v is not None:
            types = parse_enctype_list(v)
            if not types & AES:
                return error(
                    "KRB-004",
                    f"krb5.conf {key} excludes every AES enctype",
                    f"{key} = {v} -> {', '.join(enctype_name(t) for t in sorted(types)) or 'nothing'}",
                    f"Put aes256-cts-hmac-sha1-96 and aes128-cts-hmac-sha1-96 back into {key} "
                    "(or remove the line to use the defaults).",
                    key=key,
                )
    weak = conf.bool_libdefault("allow_weak_crypto", False)
    if weak is True:
        return warning(
            "KRB-004",
            "krb5.conf sets allow_weak_crypto = true",
            remedy="Remove allow_weak_crypto; single-DES keys are broken.",
        )
    return ok("KRB-004", "krb5.conf permits AES enctypes")


@check(
    "KRB-005",
    "HostnameCanonicalisation",
    requires=("KRB-001",),
    requires_clean=("DNS-002", "DNS-003", "DNS-004"),
)
def canonicalisation(ctx: RunContext) -> Result:
    """With this krb5.conf's dns_canonicalize_hostname/rdns, the host name maps to our own principal."""
    from preflight.checks.dns import dns_facts

    conf = krb5_conf(ctx)
    dcan = conf.bool_libdefault("dns_canonicalize_hostname", True)
    rdns = conf.bool_libdefault("rdns", True)
    settings = f"dns_canonicalize_hostname = {dcan}, rdns = {rdns}"
    if conf.bool_libdefault("ignore_acceptor_hostname", False) is True:
        return warning(
            "KRB-005",
            "krb5.conf sets ignore_acceptor_hostname = true",
            "The acceptor then takes tickets for any principal in the keytab, including other hosts'.",
            "Remove ignore_acceptor_hostname unless the keytab holds only this host's keys.",
        )
    fqdn = ctx.fqdn
    name = fqdn
    if dcan is not False:
        f = dns_facts(ctx)
        name = f.canonical or fqdn
        if rdns is True and f.addresses:
            lk = f.ptr.get(f.addresses[0])
            if lk is not None and lk.ok and lk.answers:
                name = lk.answers[0]
    if name != fqdn:
        return error(
            "KRB-005",
            f"with {settings}, krb5 turns {fqdn} into {name}",
            f"Clients with these settings request nfs/{name}, which is not this server's principal.",
            f"Fix DNS for {fqdn}, or set dns_canonicalize_hostname = false and rdns = false.",
        )
    return ok("KRB-005", f"{fqdn} stays {fqdn} under {settings}")


def kdc_list(ctx: RunContext) -> tuple[list[tuple[str, int]], str]:
    """KDCs of the realm from krb5.conf, else from DNS SRV records (RFC 4120 §7.2.3.2)."""
    conf = krb5_conf(ctx)
    realm = ctx.realm
    out: list[tuple[str, int]] = []
    for spec in conf.realm(realm).get("kdc", []):
        try:
            out.append(split_host_port(spec, 88))
        except ValueError:
            continue
    if out:
        return out, "krb5.conf"
    if conf.bool_libdefault("dns_lookup_kdc", True) is False:
        return [], "krb5.conf (no kdc entries and dns_lookup_kdc = false)"
    r = make_resolver(ctx.settings)
    for proto in ("_udp", "_tcp"):
        lk = lookup(r, f"_kerberos.{proto}.{realm}", "SRV")
        for ans in lk.answers:
            parts = ans.split()
            if len(parts) == 4 and (parts[3], int(parts[2])) not in out:
                out.append((parts[3].rstrip("."), int(parts[2])))
    return out, "DNS SRV records"


def kdc_answers(ctx: RunContext) -> list[KdcAnswer]:
    def compute() -> list[KdcAnswer]:
        kdcs, _ = kdc_list(ctx)
        answers: list[KdcAnswer] = []
        lock = threading.Lock()

        def one(host: str, port: int, transport: str) -> None:
            a = ping_kdc(host, port, ctx.realm, transport, ctx.settings.peer_timeout)
            with lock:
                answers.append(a)

        threads = [
            threading.Thread(target=one, args=(h, p, t), daemon=True)
            for h, p in kdcs
            for t in ("udp", "tcp")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(ctx.settings.peer_timeout * 2 + 1)
        with lock:
            return sorted(answers, key=lambda a: (a.host, a.port, a.transport))

    return ctx.memo("kdc", compute)


@check("KDC-001", "KdcReachable", requires=("KRB-001",))
def kdc_reachable(ctx: RunContext) -> Result:
    """Each KDC of the realm answers a Kerberos request on UDP and TCP port 88."""
    kdcs, source = kdc_list(ctx)
    realm = ctx.realm
    if not kdcs:
        return critical(
            "KDC-001",
            f"no KDC known for realm {realm}",
            f"Looked in {source}.",
            f"List `kdc = host` under [realms] {realm} in krb5.conf, or publish "
            f"_kerberos._udp.{realm} / _kerberos._tcp.{realm} SRV records.",
        )
    answers = kdc_answers(ctx)
    good = [a for a in answers if a.ok]
    detail = "\n".join(
        f"{a.host}:{a.port}/{a.transport}: "
        + (f"answered in {a.rtt * 1000:.1f} ms" if a.ok else a.error)
        for a in answers
    )
    if not good:
        return critical(
            "KDC-001",
            f"no KDC of {realm} answered (tried {len(answers)} over UDP and TCP)",
            detail,
            f"Check that the KDCs ({', '.join(f'{h}:{p}' for h, p in kdcs)}) run and that UDP "
            "and TCP port 88 are open.",
            kdcs=[f"{h}:{p}" for h, p in kdcs],
        )
    if len(good) < len(answers):
        bad = [f"{a.host}:{a.port}/{a.transport}" for a in answers if not a.ok]
        return warning(
            "KDC-001",
            f"{len(bad)} of {len(answers)} KDC endpoints did not answer: {', '.join(bad)}",
            detail,
            "Open UDP and TCP port 88 to every KDC (large tickets need TCP).",
        )
    return ok(
        "KDC-001", f"{len(kdcs)} KDC(s) of {realm} answer on UDP and TCP (from {source})", detail
    )
