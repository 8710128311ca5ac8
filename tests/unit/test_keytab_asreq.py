"""The AS-REQ that asks a KDC for a principal's key version, and the reading of its answer."""

from __future__ import annotations

import pytest

from keytabs import der
from keytabs.asreq import (
    KDC_ERR_C_PRINCIPAL_UNKNOWN,
    KDC_ERR_PREAUTH_REQUIRED,
    build_as_req,
    parse_as_reply,
)


def encrypted_data(etype: int, kvno: int | None) -> bytes:
    # RFC 4120 §5.2.9: EncryptedData ::= SEQUENCE { etype [0], kvno [1] OPTIONAL, cipher [2] }
    items = [der.ctx(0, der.integer(etype))]
    if kvno is not None:
        items.append(der.ctx(1, der.integer(kvno)))
    items.append(der.ctx(2, der.encode(0x04, b"\x00" * 16)))
    return der.sequence(*items)


def as_rep(ticket_kvno: int | None) -> bytes:
    # RFC 4120 §5.3: Ticket ::= [APPLICATION 1] SEQUENCE { tkt-vno, realm, sname, enc-part [3] }
    name = der.sequence(der.ctx(0, der.integer(1)), der.ctx(1, der.sequence(der.general_string("nfs"))))
    ticket = der.encode(0x61, der.sequence(
        der.ctx(0, der.integer(5)), der.ctx(1, der.general_string("R")), der.ctx(2, name),
        der.ctx(3, encrypted_data(18, ticket_kvno))))
    # RFC 4120 §5.4.2: KDC-REP; MIT leaves the kvno out of the reply's own enc-part.
    rep = der.sequence(
        der.ctx(0, der.integer(5)), der.ctx(1, der.integer(11)), der.ctx(3, der.general_string("R")),
        der.ctx(4, name), der.ctx(5, ticket), der.ctx(6, encrypted_data(18, None)))
    return der.encode(0x6B, rep)


def krb_error(code: int) -> bytes:
    return der.encode(0x7E, der.sequence(
        der.ctx(0, der.integer(5)), der.ctx(1, der.integer(30)),
        der.ctx(4, der.generalized_time("20260101120000Z")), der.ctx(5, der.integer(0)),
        der.ctx(6, der.integer(code))))


def test_request_names_the_principal_as_client_and_server() -> None:
    msg = build_as_req("EXAMPLE.COM", ("nfs", "h.example.com"), server=("nfs", "h.example.com"))
    outer, end = der.parse_one(msg)
    assert outer.tag == 0x6A and end == len(msg)
    body = outer.children()[0].child(4)
    assert body is not None
    for field in (1, 3):  # cname, sname
        name = body.child(field)
        assert name is not None
        comps = name.child(1)
        assert comps is not None and [c.value for c in comps.children()] == [b"nfs", b"h.example.com"]
    assert body.child(2).value == b"EXAMPLE.COM"  # type: ignore[union-attr]
    assert outer.children()[0].child(3) is None  # KDC-REQ padata [3]: none (RFC 4120 §5.4.1)


def test_kvno_is_read_from_the_ticket() -> None:
    kv = parse_as_reply("nfs/h@R", as_rep(7))
    assert (kv.kvno, kv.error_code, kv.reason) == (7, None, "")
    assert parse_as_reply("nfs/h@R", as_rep(2**32 - 1)).kvno == 2**32 - 1  # UInt32 beyond Int32
    kv = parse_as_reply("nfs/h@R", as_rep(None))
    assert kv.kvno is None and "no key version" in kv.reason


@pytest.mark.parametrize(("code", "words"), [
    (KDC_ERR_PREAUTH_REQUIRED, "requires pre-authentication"),
    (KDC_ERR_C_PRINCIPAL_UNKNOWN, "does not know this principal"),
    (60, "error 60"),
])
def test_errors_say_why_the_kvno_is_unknown(code: int, words: str) -> None:
    kv = parse_as_reply("nfs/h@R", krb_error(code))
    assert kv.kvno is None and kv.error_code == code and words in kv.reason
    assert kv.principal_unknown is (code == KDC_ERR_C_PRINCIPAL_UNKNOWN)


@pytest.mark.parametrize("data", [b"\x30\x00", b"\x6b\x05\x30", b"\x04\x00"])
def test_garbage_is_a_der_error(data: bytes) -> None:
    with pytest.raises((der.DerError, ValueError)):
        parse_as_reply("nfs/h@R", data)
