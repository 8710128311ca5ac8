"""HOSTS-*: /etc/hosts entries that change what name and address this host believes it has.

glibc's ``files`` source usually comes before DNS (nsswitch.conf), and the first name on a
line is the canonical name returned by gethostbyname/getaddrinfo(AI_CANONNAME).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from preflight.context import RunContext
from preflight.registry import check
from preflight.result import Result, error, ok, warning

LOOPBACK_DEFAULTS = {"127.0.0.1", "127.0.1.1", "::1"}


@dataclass(slots=True)
class HostsLine:
    lineno: int
    address: str
    names: list[str]

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address.split("%")[0]).version


class HostsFileError(Exception):
    pass


def parse_hosts(text: str) -> list[HostsLine]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            ipaddress.ip_address(parts[0].split("%")[0])
        except ValueError:
            continue  # glibc ignores lines that do not start with an address
        out.append(HostsLine(n, parts[0], [p.lower().rstrip(".") for p in parts[1:]]))
    return out


def hosts_lines(ctx: RunContext) -> list[HostsLine] | str:
    def compute() -> list[HostsLine] | str:
        try:
            return parse_hosts(ctx.settings.hosts_file.read_text(errors="replace"))
        except OSError as exc:
            return f"{ctx.settings.hosts_file}: {exc.strerror or exc}"

    return ctx.memo("hosts", compute)


def _names(ctx: RunContext) -> tuple[str, str]:
    fqdn = ctx.fqdn
    return fqdn, fqdn.split(".")[0]


def _unreadable(id: str, msg: str) -> Result:
    return warning(id, f"cannot read the hosts file: {msg}", remedy="Check the hosts file path.")


@check("HOSTS-001", "HostNotLoopbackInHosts", requires=("DNS-001",))
def not_loopback(ctx: RunContext) -> Result:
    """The FQDN or short name must not be mapped to 127.0.0.1, 127.0.1.1 or ::1."""
    lines = hosts_lines(ctx)
    if isinstance(lines, str):
        return _unreadable("HOSTS-001", lines)
    fqdn, short = _names(ctx)
    path = ctx.settings.hosts_file
    for ln in lines:
        if ln.address in LOOPBACK_DEFAULTS and (fqdn in ln.names or short in ln.names):
            which = fqdn if fqdn in ln.names else short
            return error(
                "HOSTS-001",
                f"{path} line {ln.lineno} maps {which} to {ln.address}",
                "This host then resolves its own name to loopback: the acceptor name, "
                "getfqdn() and rpc.gssd/gssproxy pick the wrong principal (the Debian "
                "installer's '127.0.1.1 host.domain host' line is the usual cause).",
                f"Edit {path} line {ln.lineno}: map {which} to the real interface address, "
                "or remove it and rely on DNS.",
                line=ln.lineno,
                address=ln.address,
            )
    return ok("HOSTS-001", f"{path} does not map {fqdn} to loopback")


@check("HOSTS-002", "HostsAgreesWithDns", requires=("DNS-002",))
def agrees_with_dns(ctx: RunContext) -> Result:
    """Addresses /etc/hosts gives the FQDN are the ones DNS gives it."""
    from preflight.checks.dns import dns_facts

    lines = hosts_lines(ctx)
    if isinstance(lines, str):
        return _unreadable("HOSTS-002", lines)
    fqdn, _ = _names(ctx)
    local = {ln.address for ln in lines if fqdn in ln.names and ln.address not in LOOPBACK_DEFAULTS}
    if not local:
        return ok("HOSTS-002", f"{ctx.settings.hosts_file} has no address for {fqdn}; DNS decides")
    dns_addrs = set(dns_facts(ctx).addresses)
    if local - dns_addrs:
        return warning(
            "HOSTS-002",
            f"{ctx.settings.hosts_file} says {fqdn} is {', '.join(sorted(local))}, DNS says "
            f"{', '.join(sorted(dns_addrs)) or 'nothing'}",
            "This host and its clients disagree about its address.",
            f"Make the {ctx.settings.hosts_file} entry match DNS, or remove it.",
            hosts=sorted(local),
            dns=sorted(dns_addrs),
        )
    return ok("HOSTS-002", f"{ctx.settings.hosts_file} agrees with DNS for {fqdn}")


@check("HOSTS-003", "FqdnFirstInHosts", requires=("DNS-001",))
def fqdn_first(ctx: RunContext) -> Result:
    """On a line naming this host, the FQDN comes before the short name."""
    lines = hosts_lines(ctx)
    if isinstance(lines, str):
        return _unreadable("HOSTS-003", lines)
    fqdn, short = _names(ctx)
    for ln in lines:
        if short in ln.names and fqdn in ln.names and ln.names.index(short) < ln.names.index(fqdn):
            return warning(
                "HOSTS-003",
                f"{ctx.settings.hosts_file} line {ln.lineno} lists {short} before {fqdn}",
                "The first name is the canonical one: getfqdn() returns the short name and "
                "principals are built from it.",
                f"Reorder line {ln.lineno}: '{ln.address} {fqdn} {short}'.",
                line=ln.lineno,
            )
    return ok("HOSTS-003", "the FQDN comes first wherever this host is named")


@check("HOSTS-004", "NoDuplicateHostsEntries")
def duplicates(ctx: RunContext) -> Result:
    """A name on several lines of one address family: only the first one counts."""
    lines = hosts_lines(ctx)
    if isinstance(lines, str):
        return _unreadable("HOSTS-004", lines)
    seen: dict[tuple[str, int], HostsLine] = {}
    dups: list[str] = []
    for ln in lines:
        for name in dict.fromkeys(ln.names):
            key = (name, ln.family)
            if key in seen and seen[key].lineno != ln.lineno:
                first = seen[key]
                dups.append(
                    f"{name}: line {first.lineno} ({first.address}) and line {ln.lineno} ({ln.address})"
                )
            else:
                seen.setdefault(key, ln)
    if dups:
        return warning(
            "HOSTS-004",
            f"{ctx.settings.hosts_file} names {dups[0].split(':')[0]} on more than one line",
            "\n".join(dups),
            "Keep one line per name and address family; later lines are ignored.",
            duplicates=dups,
        )
    return ok("HOSTS-004", f"no duplicate names in {ctx.settings.hosts_file}")
