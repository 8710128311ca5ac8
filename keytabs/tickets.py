"""Reading the key version and enctype a KDC used for a service ticket.

The first token of a Kerberos GSS context is an AP-REQ wrapped in the RFC 2743 §3.1 token
framing (RFC 4121 §4.1).  The AP-REQ carries the Ticket, whose enc-part (EncryptedData, RFC 4120
§5.2.9) names the enctype and kvno of the service key: exactly the key the acceptor must find
in its keytab.
"""

from __future__ import annotations

from dataclasses import dataclass

from keytabs import der

KRB5_MECH_OID_DER = bytes.fromhex("06092a864886f712010202")


@dataclass(slots=True, frozen=True)
class TicketKey:
    enctype: int
    kvno: int | None


def ticket_key_from_ap_req(ap_req: bytes) -> TicketKey:
    outer, _ = der.parse_one(ap_req)
    if outer.tag != 0x6E:  # [APPLICATION 14] AP-REQ
        raise der.DerError(f"not an AP-REQ (tag 0x{outer.tag:02x})")
    (seq,) = outer.children()
    ticket_app = seq.child(3)
    if ticket_app is None or ticket_app.tag != 0x61:  # [APPLICATION 1] Ticket
        raise der.DerError("AP-REQ without a ticket")
    (tseq,) = ticket_app.children()
    enc = tseq.child(3)
    if enc is None:
        raise der.DerError("ticket without enc-part")
    etype = enc.child(0)
    kvno = enc.child(1)
    if etype is None:
        raise der.DerError("ticket enc-part without etype")
    return TicketKey(etype.as_int(), kvno.as_int() if kvno is not None else None)


def ticket_key_from_gss_token(token: bytes) -> TicketKey:
    """Parse the initiator's first krb5 GSS token (0x60 | len | mech OID | 0x0100 | AP-REQ)."""
    outer, _ = der.parse_one(token)
    if outer.tag != 0x60:
        raise der.DerError("not a GSS initial context token")
    body = outer.value
    if not body.startswith(KRB5_MECH_OID_DER):
        raise der.DerError("not a Kerberos GSS token")
    body = body[len(KRB5_MECH_OID_DER) :]
    if body[:2] != b"\x01\x00":  # TOK_ID KRB_AP_REQ, RFC 1964 §1.1
        raise der.DerError("GSS token is not an AP-REQ")
    return ticket_key_from_ap_req(body[2:])
