"""A dnspython-based authoritative DNS responder on 127.0.0.1 (UDP and TCP) with a settable zone.

The zone is a dict ``{(name, rdtype): [rdata text, ...]}``; names are absolute or relative to
nothing (a trailing dot is added).  CNAMEs are followed inside the zone, unknown names get
NXDOMAIN, known names without the asked type get an empty NOERROR answer.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

Zone = dict[tuple[str, str], list[str]]


def _abs(name: str) -> str:
    return name.lower() if name.endswith(".") else name.lower() + "."


def host_zone(
    records: dict[str, str | list[str]],
    ptrs: dict[str, list[str]] | None = None,
    cnames: dict[str, str] | None = None,
) -> Zone:
    """Build a zone: A/AAAA from ``records`` (name -> address(es)), PTRs (address -> names)."""
    zone: Zone = {}
    for name, addrs in records.items():
        for a in [addrs] if isinstance(addrs, str) else addrs:
            zone.setdefault((_abs(name), "AAAA" if ":" in a else "A"), []).append(a)
    for addr, names in (ptrs or {}).items():
        zone[(dns.reversename.from_address(addr).to_text().lower(), "PTR")] = [
            _abs(n) for n in names
        ]
    for alias, target in (cnames or {}).items():
        zone[(_abs(alias), "CNAME")] = [_abs(target)]
    return zone


class FakeDnsServer:
    def __init__(self, zone: Zone | None = None, host: str = "127.0.0.1") -> None:
        self.zone: Zone = {}
        self.set_zone(zone or {})
        # One port number for UDP and TCP: the UDP port the kernel picks may be taken on TCP
        # by another connection on a busy machine, so try a bounded number of ports.
        for attempt in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((host, 0))
            self.host, self.port = self.udp.getsockname()
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((host, self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
                if attempt == 49:
                    raise
        self.tcp.listen(16)
        for s in (self.udp, self.tcp):
            s.settimeout(0.2)
        self.queries = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set_zone(self, zone: Zone) -> None:
        self.zone = {(_abs(n), t.upper()): list(v) for (n, t), v in zone.items()}

    def answer(self, wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        resp = dns.message.make_response(q)
        resp.flags |= dns.flags.AA
        self.queries += 1
        if not q.question:
            resp.set_rcode(dns.rcode.FORMERR)
            return resp.to_wire()
        question = q.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        for _ in range(8):  # follow CNAMEs within the zone
            if (name, "CNAME") in self.zone and rdtype != "CNAME":
                target = self.zone[(name, "CNAME")][0]
                resp.answer.append(self._rrset(name, "CNAME", [target]))
                name = target
                continue
            break
        values = self.zone.get((name, rdtype))
        if values:
            resp.answer.append(self._rrset(name, rdtype, values))
        elif not any(n == name for n, _ in self.zone) and not resp.answer:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp.to_wire()

    @staticmethod
    def _rrset(name: str, rdtype: str, values: list[str]) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(
            dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)
        )
        for v in values:
            rrset.add(
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), v), ttl=60
            )
        return rrset

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self.udp.sendto(self.answer(data), peer)
            except Exception:  # noqa: BLE001 - a bad query must not stop the server
                continue

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    (n,) = struct.unpack(">H", conn.recv(2))
                    data = b""
                    while len(data) < n:
                        chunk = conn.recv(n - len(data))
                        if not chunk:
                            break
                        data += chunk
                    out = self.answer(data)
                    conn.sendall(struct.pack(">H", len(out)) + out)
                except Exception:  # noqa: BLE001
                    continue

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def dns_server() -> Iterator[FakeDnsServer]:
    srv = FakeDnsServer()
    try:
        yield srv
    finally:
        srv.close()
