"""Talking to a KDC without credentials: reachability and its clock.

An AS-REQ for a principal that does not exist (RFC 4120 §3.1.1) makes any KDC answer with a
KRB-ERROR (RFC 4120 §5.9.1) that carries the KDC's own time (stime, susec).  That proves the KDC
answers on a given transport and tells us its clock, with no keytab and no password.
TCP messages carry a four-byte length prefix (RFC 4120 §7.2.2).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from keytabs import der

KRB_ERROR_TAG = 0x7E  # [APPLICATION 30]
AS_REP_TAG = 0x6B  # [APPLICATION 11]
PROBE_PRINCIPAL = "securenfs-preflight-probe"


@dataclass(slots=True)
class KdcAnswer:
    host: str
    port: int
    transport: str  # "udp" or "tcp"
    ok: bool
    error: str = ""
    kdc_time: float | None = None
    offset: float | None = None  # KDC clock minus local clock (seconds)
    error_code: int | None = None
    rtt: float = 0.0


def build_as_req(realm: str, client: str = PROBE_PRINCIPAL) -> bytes:
    till = "20370101000000Z"
    nonce = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    cname = der.sequence(
        der.ctx(0, der.integer(1)), der.ctx(1, der.sequence(der.general_string(client)))
    )
    sname = der.sequence(
        der.ctx(0, der.integer(2)),
        der.ctx(1, der.sequence(der.general_string("krbtgt"), der.general_string(realm))),
    )
    body = der.sequence(
        der.ctx(0, der.bit_string(b"\x00\x00\x00\x00")),
        der.ctx(1, cname),
        der.ctx(2, der.general_string(realm)),
        der.ctx(3, sname),
        der.ctx(5, der.generalized_time(till)),
        der.ctx(7, der.integer(nonce)),
        der.ctx(8, der.sequence(der.integer(18), der.integer(17))),
    )
    req = der.sequence(der.ctx(1, der.integer(5)), der.ctx(2, der.integer(10)), der.ctx(4, body))
    return der.encode(0x6A, req)  # [APPLICATION 10] AS-REQ


def _parse_time(raw: bytes) -> float:
    return datetime.strptime(raw.decode("ascii"), "%Y%m%d%H%M%SZ").replace(tzinfo=UTC).timestamp()


def parse_reply(data: bytes) -> tuple[float | None, int | None]:
    """(KDC time, error code) from a KRB-ERROR; (None, None) for an AS-REP."""
    outer, _ = der.parse_one(data)
    if outer.tag == AS_REP_TAG:
        return None, None
    if outer.tag != KRB_ERROR_TAG:
        raise der.DerError(f"not a Kerberos reply (tag 0x{outer.tag:02x})")
    (seq,) = outer.children()
    stime = seq.child(4)
    susec = seq.child(5)
    code = seq.child(6)
    t = _parse_time(stime.value) if stime is not None else None
    if t is not None and susec is not None:
        t += susec.as_int() / 1e6
    return t, code.as_int() if code is not None else None


def ping_kdc(host: str, port: int, realm: str, transport: str, timeout: float) -> KdcAnswer:
    ans = KdcAnswer(host, port, transport, False)
    msg = build_as_req(realm)
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        ans.error = f"cannot resolve {host}: {exc.strerror}"
        return ans
    fam, stype, proto, _, addr = infos[0]
    t0 = time.time()
    try:
        with socket.socket(fam, stype, proto) as s:
            s.settimeout(timeout)
            if transport == "udp":
                s.connect(addr)
                s.send(msg)
                data = s.recv(65536)
            else:
                s.connect(addr)
                s.sendall(struct.pack(">I", len(msg)) + msg)
                head = _recv_exact(s, 4)
                (n,) = struct.unpack(">I", head)
                if n > 1 << 20:
                    raise der.DerError("oversized TCP reply")
                data = _recv_exact(s, n)
    except TimeoutError:
        ans.error = f"no answer within {timeout:g} s"
        return ans
    except ConnectionRefusedError:
        ans.error = "connection refused (nothing listening)"
        return ans
    except OSError as exc:
        ans.error = exc.strerror or str(exc)
        return ans
    t1 = time.time()
    ans.rtt = t1 - t0
    try:
        kdc_time, code = parse_reply(data)
    except (der.DerError, ValueError) as exc:
        ans.error = f"answer is not a Kerberos reply: {exc}"
        return ans
    ans.ok = True
    ans.error_code = code
    if kdc_time is not None:
        ans.kdc_time = kdc_time
        ans.offset = kdc_time - (t0 + t1) / 2
    return ans


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("connection closed by the KDC")
        buf += chunk
    return bytes(buf)
