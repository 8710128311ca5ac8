"""DNS-*: the host's name and addresses as clients will see them.

Clients build the service principal from the name they mount, usually after canonicalising it
through DNS (MIT krb5 ``dns_canonicalize_hostname`` and ``rdns`` both default to true,
krb5.conf(5)).  A missing or wrong PTR, or a CNAME, makes them ask for a principal this server
does not have: "Server not found in Kerberos database".
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from preflight.context import RunContext
from preflight.registry import check
from preflight.resolver import Lookup, lookup, make_resolver, reverse_name
from preflight.result import Result, critical, error, ok, warning


@dataclass(slots=True)
class DnsFacts:
    fqdn: str
    a: Lookup
    aaaa: Lookup
    ptr: dict[str, Lookup] = field(default_factory=dict)

    @property
    def addresses(self) -> list[str]:
        return [*self.a.answers, *self.aaaa.answers]

    @property
    def canonical(self) -> str:
        for lk in (self.a, self.aaaa):
            if lk.ok and lk.canonical:
                return lk.canonical
        return self.fqdn

    @property
    def cname_chain(self) -> list[str]:
        return self.a.cname_chain or self.aaaa.cname_chain


def dns_facts(ctx: RunContext) -> DnsFacts:
    def compute() -> DnsFacts:
        r = make_resolver(ctx.settings)
        fqdn = ctx.fqdn
        facts = DnsFacts(fqdn, lookup(r, fqdn, "A"), lookup(r, fqdn, "AAAA"))
        for addr in facts.addresses:
            facts.ptr[addr] = lookup(r, reverse_name(addr), "PTR")
        return facts

    return ctx.memo("dns", compute)


def is_local_address(address: str) -> bool:
    """True when this host can bind the address, i.e. it is configured on an interface."""
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


@check("DNS-001", "HostnameIsFQDN")
def hostname_is_fqdn(ctx: RunContext) -> Result:
    """The name service principals are built from must be fully qualified."""
    fqdn = ctx.fqdn
    if "." not in fqdn or fqdn.startswith("localhost") or fqdn.endswith(".localdomain"):
        return critical(
            "DNS-001",
            f"host name '{fqdn}' is not a fully qualified domain name",
            "Clients request nfs/<fqdn>@REALM; a short or localhost name never matches.",
            "Set it with `hostnamectl set-hostname nfs1.example.com`, or set "
            "[server] hostname in the configuration.",
            hostname=fqdn,
        )
    return ok("DNS-001", f"host name {fqdn} is fully qualified")


@check("DNS-002", "ForwardDnsResolves", requires=("DNS-001",))
def forward_dns(ctx: RunContext) -> Result:
    """The FQDN has A/AAAA records in DNS, and they are addresses of this host."""
    f = dns_facts(ctx)
    lookups = (f.a, f.aaaa)
    if all(lk.unreachable for lk in lookups):
        return error(
            "DNS-002",
            f"DNS did not answer for {f.fqdn}",
            f.a.error,
            "Check the DNS servers (resolv.conf or [preflight] dns_servers) and UDP/TCP port 53.",
        )
    if not f.addresses:
        why = (
            "does not exist (NXDOMAIN)"
            if "NXDOMAIN" in (f.a.error, f.aaaa.error)
            else "has no A or AAAA record"
        )
        return critical(
            "DNS-002",
            f"{f.fqdn} {why} in DNS",
            f"A: {f.a.error or 'none'}; AAAA: {f.aaaa.error or 'none'}",
            f"Add an A (and AAAA) record for {f.fqdn} pointing at this server's address.",
        )
    local = [a for a in f.addresses if is_local_address(a)]
    foreign = [a for a in f.addresses if a not in local]
    if not local:
        return error(
            "DNS-002",
            f"{f.fqdn} resolves to {', '.join(f.addresses)}, none of which is on this host",
            remedy=f"Fix the A/AAAA records of {f.fqdn}, or set the right hostname.",
            addresses=f.addresses,
        )
    if foreign:
        return warning(
            "DNS-002",
            f"{f.fqdn} also resolves to {', '.join(foreign)}, not on this host",
            remedy="Remove stale A/AAAA records (clients may connect to another machine).",
            addresses=f.addresses,
        )
    return ok("DNS-002", f"{f.fqdn} resolves to {', '.join(f.addresses)}", addresses=f.addresses)


@check("DNS-003", "ReverseDnsMatchesFQDN", requires=("DNS-002",))
def reverse_dns(ctx: RunContext) -> Result:
    """Every address resolves back (PTR) to the host's name."""
    f = dns_facts(ctx)
    expected = f.canonical  # an alias is judged by DNS-004
    problems: list[str] = []
    for addr, lk in f.ptr.items():
        if not lk.ok:
            problems.append(
                f"{addr} has no PTR record ({lk.error})"
                if not lk.unreachable
                else f"{addr}: PTR lookup failed ({lk.error})"
            )
        elif expected not in lk.answers:
            problems.append(f"PTR for {addr} is {', '.join(lk.answers)}, expected {expected}")
    if problems:
        return error(
            "DNS-003",
            problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
            "\n".join(problems) + "\nClients canonicalise the server name through reverse DNS "
            "(krb5.conf rdns = true, the default) and then ask for that principal.",
            f"Add or fix the PTR record(s) so each address maps to {expected}, or set "
            "`rdns = false` in the clients' krb5.conf.",
        )
    return ok("DNS-003", f"every address maps back to {expected}")


@check("DNS-004", "NoAliasesOrMultiplePtr", requires=("DNS-002",))
def aliases(ctx: RunContext) -> Result:
    """A CNAME on the host's name, or several PTRs for one address, changes the principal clients request."""
    f = dns_facts(ctx)
    if f.cname_chain:
        target = f.canonical
        return warning(
            "DNS-004",
            f"{f.fqdn} is an alias (CNAME) for {target}",
            f"CNAME chain: {' -> '.join([f.fqdn, *f.cname_chain])}. Clients that canonicalise "
            f"(dns_canonicalize_hostname = true, the default) request nfs/{target}.",
            f"Make {f.fqdn} an A/AAAA record, or add nfs/{target} to the keytab, or mount by "
            "the canonical name.",
            cname=f.cname_chain,
        )
    multi = {a: lk.answers for a, lk in f.ptr.items() if lk.ok and len(lk.answers) > 1}
    if multi:
        addr, names = next(iter(multi.items()))
        return warning(
            "DNS-004",
            f"{addr} has {len(names)} PTR records: {', '.join(sorted(names))}",
            "Clients pick one at random, so the principal they request changes from mount to mount.",
            f"Keep a single PTR record ({f.fqdn}) per address.",
            ptr=multi,
        )
    return ok("DNS-004", f"{f.fqdn} is not an alias and has one PTR per address")
