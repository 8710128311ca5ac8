"""RPCSEC_GSS wire structures, flavor table and error translation."""

from __future__ import annotations

import pytest

from securenfs.rpcsec_gss import wire
from securenfs.rpcsec_gss.constants import GssProc, GssService
from securenfs.rpcsec_gss.flavors import (
    KRB5_OID_DER,
    PseudoFlavor,
    pseudo_flavor_for_service,
    triple_for_name,
    triple_for_oid_service,
)
from securenfs.rpcsec_gss.gsserrors import Cause, translate
from securenfs.xdr import XdrError


def test_cred_round_trip_and_bounds() -> None:
    c = wire.GssCred(GssProc.DATA, 7, GssService.PRIVACY, b"\x01" * 16)
    assert wire.decode_cred(wire.encode_cred(c)) == c
    with pytest.raises(wire.BadVersion):
        wire.decode_cred(b"\x00\x00\x00\x02" + wire.encode_cred(c)[4:])
    with pytest.raises(XdrError):
        wire.decode_cred(wire.encode_cred(c) + b"\0\0\0\0")
    with pytest.raises(XdrError):
        wire.decode_cred(b"\x00\x00\x00\x01" + b"\x00" * 12 + b"\xff\xff\xff\xff")


def test_init_res_round_trip_and_token_cap() -> None:
    r = wire.InitRes(b"h" * 16, 0, 0, 128, b"tok")
    assert wire.decode_init_res(wire.encode_init_res(r)) == r
    with pytest.raises(XdrError):
        wire.decode_init_arg(wire.encode_init_arg(b"x" * 100), maxlen=99)
    assert wire.decode_init_arg(wire.encode_init_arg(b"y" * 70000)) == b"y" * 70000


def test_pseudo_flavors_and_secinfo_triples() -> None:
    assert [int(f) for f in PseudoFlavor] == [390003, 390004, 390005]
    assert pseudo_flavor_for_service(GssService.PRIVACY) is PseudoFlavor.KRB5P
    t = triple_for_name("krb5i")
    assert (t.oid, t.qop, t.service) == (KRB5_OID_DER, 0, GssService.INTEGRITY)
    assert triple_for_oid_service(KRB5_OID_DER, 3) == triple_for_name("krb5p")
    assert triple_for_oid_service(b"\x2b\x06", 1) is None


@pytest.mark.parametrize("minor,text,cause", [
    (0, "Clock skew too great", Cause.CLOCK_SKEW),
    (0, "Request ticket server nfs/a@R kvno 9 not found in keytab; keytab is likely out of date",
     Cause.KVNO_MISMATCH),
    (0, "No key table entry found for nfs/a@R", Cause.MISSING_PRINCIPAL),
    (0, "KDC has no support for encryption type", Cause.UNSUPPORTED_ENCTYPE),
    (0x96C73A00 + 37, "", Cause.CLOCK_SKEW),
    (0, "No credentials cache found (filename: /tmp/krb5cc_1000)", Cause.NO_TICKET),
    (0, "Key table file '/etc/krb5.keytab' not found", Cause.NO_CREDENTIALS),
])
def test_translation(minor: int, text: str, cause: Cause) -> None:
    f = translate(13 << 16, minor, text)
    assert f.cause is cause
    assert "likely cause" in f.describe() and f.major_text.startswith("unspecified failure")


def test_per_message_integrity_failure_reads_as_bad_checksum() -> None:
    f = translate(6 << 16, 0x96C73A00 + 31, "Decrypt integrity check failed", per_message=True)
    assert f.cause is Cause.BAD_SIGNATURE
