"""DNS lookups for the checks, through the configured servers (never /etc/hosts)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

from preflight.settings import PreflightSettings, split_host_port


@dataclass(slots=True)
class Lookup:
    name: str
    rdtype: str
    answers: list[str] = field(default_factory=list)
    cname_chain: list[str] = field(default_factory=list)  # aliases followed, in order
    canonical: str = ""
    error: str = ""  # "" | "NXDOMAIN" | "NOANSWER" | "TIMEOUT" | "SERVFAIL: ..."

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def unreachable(self) -> bool:
        return self.error.startswith(("TIMEOUT", "NO-SERVER"))


def _strip(name: str) -> str:
    return name.lower().rstrip(".")


def make_resolver(settings: PreflightSettings) -> dns.resolver.Resolver:
    if not settings.dns_servers:
        r = dns.resolver.Resolver()
    else:
        r = dns.resolver.Resolver(configure=False)
        servers: list[dns.nameserver.Nameserver | str] = []
        for spec in settings.dns_servers:
            host, port = split_host_port(spec, 53)
            try:
                ipaddress.ip_address(host)
                addr = host
            except ValueError:
                addr = str(socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0])
            servers.append(dns.nameserver.Do53Nameserver(addr, port))
        r.nameservers = servers
    r.timeout = settings.peer_timeout
    r.lifetime = settings.peer_timeout * 1.5
    r.cache = None
    return r


def lookup(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> Lookup:
    res = Lookup(_strip(name), rdtype)
    try:
        ans = resolver.resolve(
            name if name.endswith(".") else name + ".",
            rdtype,
            search=False,
            raise_on_no_answer=True,
        )
    except dns.resolver.NXDOMAIN:
        res.error = "NXDOMAIN"
        return res
    except dns.resolver.NoAnswer:
        res.error = "NOANSWER"
        return res
    except dns.resolver.LifetimeTimeout:
        res.error = "TIMEOUT: no DNS server answered"
        return res
    except dns.resolver.NoNameservers as exc:
        res.error = f"NO-SERVER: every DNS server failed ({exc})"
        return res
    except dns.exception.DNSException as exc:
        res.error = f"FAILED: {exc}"
        return res
    for rrset in ans.response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME:
            for rd in rrset:
                res.cname_chain.append(_strip(rd.target.to_text()))
    res.canonical = _strip(ans.canonical_name.to_text())
    res.answers = [_strip(rd.to_text()) for rd in ans]
    return res


def reverse_name(address: str) -> str:
    return dns.reversename.from_address(address).to_text()
