"""securenfs probe: argument parsing, SECINFO entries in words, the human and JSON reports."""

from __future__ import annotations

import json

import pytest

from securenfs.client.probe import (
    Entry,
    Failure,
    Outcome,
    Report,
    flavor_of,
    parse_server,
    render,
    to_json,
)
from securenfs.proto.xdr41 import rpcsec_gss_info, secinfo4
from securenfs.rpc.constants import AuthFlavor
from securenfs.rpcsec_gss.flavors import KRB5_OID_DER


@pytest.mark.parametrize("text,expected", [
    ("nfs1.example.com", ("nfs1.example.com", 2049)),
    ("nfs1.example.com:20490", ("nfs1.example.com", 20490)),
    ("127.0.0.1:2049", ("127.0.0.1", 2049)),
    ("[::1]", ("::1", 2049)),
    ("::1", ("::1", 2049)),  # a bare IPv6 address: no port
    ("[fd00::10]:2050", ("fd00::10", 2050)),
])
def test_server_argument(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["", ":2049", "host:", "host:0", "host:65536", "host:x", "[::1", "[::1]x"])
def test_bad_server_argument(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST"):
        parse_server(text)


def test_secinfo_entries_in_words() -> None:
    # RFC 8881 §18.29.2: RPCSEC_GSS entries carry (oid, qop, service); others only the flavor.
    assert flavor_of(secinfo4(AuthFlavor.RPCSEC_GSS, rpcsec_gss_info(KRB5_OID_DER, 0, 3))) == "krb5p"
    assert flavor_of(secinfo4(AuthFlavor.RPCSEC_GSS, rpcsec_gss_info(KRB5_OID_DER, 0, 1))) == "krb5"
    assert flavor_of(secinfo4(AuthFlavor.AUTH_SYS)) == "sys"
    assert flavor_of(secinfo4(AuthFlavor.RPCSEC_GSS, rpcsec_gss_info(b"\x2b\x06", 0, 3))) == "RPCSEC_GSS service 3"


def test_reports() -> None:
    ok = Report("h:2049", "/a", "sys", sec="sys", identity="uid 1 gid 1 (AUTH_SYS)", export_flavors=["sys"],
                entries=[Entry("f", "reg", "-rw-r-----", 3, "alice@example.com", "staff@example.com")])
    text = render(ok)
    assert "export      /a allows sys (SECINFO_NO_NAME)" in text and text.endswith("result      OK\n")
    assert "  -rw-r-----  alice@example.com" in text
    doc = json.loads(to_json(ok))
    assert doc["outcome"] == "ok" and doc["exit_status"] == 0 and doc["failure"] is None
    bad = Report("h:2049", "/a", "krb5p", failure=Failure("connect", "refused", "nobody listens", "start it",
                                                          Outcome.UNREACHABLE))
    assert render(bad).endswith("FAILED at connect: refused\n  likely cause: nobody listens\n  fix: start it\n")
    doc = json.loads(to_json(bad))
    assert doc["exit_status"] == 3 and doc["failure"]["outcome"] == "unreachable"
