"""A bare AS-REQ to a KDC, and what its answer says about a principal's current key.

A keytab whose key no longer matches the KDC's fails to get a TGT with "Decrypt integrity
check failed" (the KDC answered with an AS-REP sealed in a key the keytab lacks) or
"Preauthentication failed".  Neither message says which key the KDC holds.  An AS-REQ in
which the principal asks, without pre-authentication data (RFC 4120 §3.1.1), for a ticket to
itself answers that when the principal does not require pre-authentication: the ticket in
the AS-REP is sealed in the service's (here: the principal's own) key, and its EncryptedData
names that key's version (RFC 4120 §5.3, §5.2.9).  MIT KDCs leave the kvno out of the
AS-REP's own enc-part, so the ticket is where to read it.  When the principal requires
pre-authentication the KDC answers KDC_ERR_PREAUTH_REQUIRED and the key version stays
unknown.  Nothing here needs or reveals key material.

TCP messages carry a four-byte length prefix (RFC 4120 §7.2.2).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from keytabs import der
from keytabs.keytab import Principal

AS_REQ_TAG = 0x6A  # [APPLICATION 10]
AS_REP_TAG = 0x6B  # [APPLICATION 11]
KRB_ERROR_TAG = 0x7E  # [APPLICATION 30]

#: RFC 4120 §7.5.9 error codes the diagnosis names.
KDC_ERR_C_PRINCIPAL_UNKNOWN = 6
KDC_ERR_ETYPE_NOSUPP = 14
KDC_ERR_PREAUTH_REQUIRED = 25

#: aes256/aes128 (RFC 3962), aes256/aes128-sha2 (RFC 8009), rc4-hmac (RFC 4757), des3.
REQUEST_ETYPES = (18, 17, 20, 19, 23, 16)
MAX_TCP_REPLY = 1 << 20


def _name(name_type: int, components: tuple[str, ...] | list[str]) -> bytes:
    return der.sequence(
        der.ctx(0, der.integer(name_type)),
        der.ctx(1, der.sequence(*(der.general_string(c) for c in components))),
    )


def build_as_req(realm: str, components: tuple[str, ...] | list[str], name_type: int = 1,
                 etypes: tuple[int, ...] = REQUEST_ETYPES,
                 server: tuple[str, ...] | list[str] | None = None) -> bytes:
    """An AS-REQ for ``components@realm``, with no padata (RFC 4120 §5.4.1), for a ticket
    to ``server`` (default krbtgt/realm, KRB_NT_SRV_INST)."""
    nonce = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    cname = _name(name_type, components)
    sname = _name(2, ("krbtgt", realm)) if server is None else _name(1, server)
    body = der.sequence(
        der.ctx(0, der.bit_string(b"\x00\x00\x00\x00")),
        der.ctx(1, cname),
        der.ctx(2, der.general_string(realm)),
        der.ctx(3, sname),
        der.ctx(5, der.generalized_time("20370101000000Z")),
        der.ctx(7, der.integer(nonce)),
        der.ctx(8, der.sequence(*(der.integer(e) for e in etypes))),
    )
    req = der.sequence(der.ctx(1, der.integer(5)), der.ctx(2, der.integer(10)), der.ctx(4, body))
    return der.encode(AS_REQ_TAG, req)


def exchange(host: str, port: int, message: bytes, transport: str, timeout: float) -> bytes:
    """Send one Kerberos message and return the reply; raises OSError (TimeoutError,
    ConnectionRefusedError, socket.gaierror ...) or der.DerError for an oversized reply."""
    stype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    fam, stype, proto, _, addr = socket.getaddrinfo(host, port, type=stype)[0]
    with socket.socket(fam, stype, proto) as s:
        s.settimeout(timeout)
        s.connect(addr)
        if transport == "udp":
            s.send(message)
            return s.recv(65536)
        s.sendall(struct.pack(">I", len(message)) + message)
        (n,) = struct.unpack(">I", _recv_exact(s, 4))
        if n > MAX_TCP_REPLY:
            raise der.DerError("oversized TCP reply")
        return _recv_exact(s, n)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("connection closed by the KDC")
        buf += chunk
    return bytes(buf)


@dataclass(slots=True)
class KeyVersion:
    """What the KDC said about a principal's key: its kvno, or why it is not known."""

    principal: str
    kvno: int | None = None
    error_code: int | None = None  # the KRB-ERROR code, when the KDC answered with one
    reason: str = ""  # why kvno is None

    @property
    def principal_unknown(self) -> bool:
        return self.error_code == KDC_ERR_C_PRINCIPAL_UNKNOWN


def parse_as_reply(principal: str, data: bytes) -> KeyVersion:
    """The client key's kvno from an AS-REP, or the KRB-ERROR's code."""
    outer, _ = der.parse_one(data)
    (seq,) = outer.children()
    if outer.tag == KRB_ERROR_TAG:
        code_tlv = seq.child(6)
        code = code_tlv.as_int() if code_tlv is not None else None
        why = {
            KDC_ERR_PREAUTH_REQUIRED: "the KDC requires pre-authentication for this principal, so it "
            "does not tell which key version it holds",
            KDC_ERR_C_PRINCIPAL_UNKNOWN: "the KDC does not know this principal",
            KDC_ERR_ETYPE_NOSUPP: "the KDC has no key of a requested encryption type for it",
        }.get(code or -1, f"the KDC answered with error {code}")
        return KeyVersion(principal, None, code, why)
    if outer.tag != AS_REP_TAG:
        raise der.DerError(f"not an AS-REP or KRB-ERROR (tag 0x{outer.tag:02x})")
    # KDC-REP ticket [5] -> Ticket ::= [APPLICATION 1] SEQUENCE { ..., enc-part [3] }.
    ticket = seq.child(5)
    ticket_seq = ticket.children()[0] if ticket is not None and ticket.children() else None
    enc_part = ticket_seq.child(3) if ticket_seq is not None else None
    kvno_tlv = enc_part.child(1) if enc_part is not None else None
    if kvno_tlv is None:
        return KeyVersion(principal, None, None, "the KDC's answer carries no key version")
    return KeyVersion(principal, kvno_tlv.as_int() & 0xFFFFFFFF)


def key_version(kdcs: list[tuple[str, int]], principal: str, default_realm: str = "",
                timeout: float = 2.0) -> KeyVersion:
    """Ask the KDCs, in turn, which key version ``principal`` has (see the module docstring)."""
    p = Principal.parse(principal, default_realm)
    if not kdcs:
        return KeyVersion(principal, None, None, f"no KDC is known for realm {p.realm}")
    msg = build_as_req(p.realm, p.components, server=p.components)
    reasons = []
    for host, port in kdcs:
        for transport in ("udp", "tcp"):
            try:
                return parse_as_reply(principal, exchange(host, port, msg, transport, timeout))
            except (OSError, der.DerError, ValueError) as exc:
                reasons.append(f"{host}:{port}/{transport}: {exc}")
    return KeyVersion(principal, None, None, "no KDC answered: " + "; ".join(reasons))
