"""Talking to a KDC without credentials: reachability and its clock.

An AS-REQ for a principal that does not exist (RFC 4120 §3.1.1) makes any KDC answer with a
KRB-ERROR (RFC 4120 §5.9.1) that carries the KDC's own time (stime, susec).  That proves the KDC
answers on a given transport and tells us its clock, with no keytab and no password.
TCP messages carry a four-byte length prefix (RFC 4120 §7.2.2).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from keytabs import asreq, der

KRB_ERROR_TAG = asreq.KRB_ERROR_TAG
AS_REP_TAG = asreq.AS_REP_TAG
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
    return asreq.build_as_req(realm, (client,), etypes=(18, 17))


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
    t0 = time.time()
    try:
        data = asreq.exchange(host, port, msg, transport, timeout)
    except socket.gaierror as exc:
        ans.error = f"cannot resolve {host}: {exc.strerror}"
        return ans
    except TimeoutError:
        ans.error = f"no answer within {timeout:g} s"
        return ans
    except ConnectionRefusedError:
        ans.error = "connection refused (nothing listening)"
        return ans
    except OSError as exc:
        ans.error = exc.strerror or str(exc)
        return ans
    except der.DerError as exc:
        ans.error = f"answer is not a Kerberos reply: {exc}"
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
