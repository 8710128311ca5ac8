"""Parsers under the checks: krb5.conf, hosts files, Kerberos DER messages, host:port."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytabs import der
from keytabs.tickets import ticket_key_from_ap_req, ticket_key_from_gss_token
from preflight.checks.hosts import parse_hosts
from preflight.kdcping import build_as_req, parse_reply
from preflight.krb5conf import load_krb5_conf
from preflight.settings import split_host_port


def test_krb5conf_sections_blocks_and_includes(tmp_path: Path) -> None:
    inc = tmp_path / "inc.d"
    inc.mkdir()
    (inc / "extra.conf").write_text("[domain_realm]\n .example.com = EXAMPLE.COM\n")
    (inc / "ignored~").write_text("[libdefaults]\n default_realm = WRONG\n")
    conf = tmp_path / "krb5.conf"
    conf.write_text(f"""# comment
includedir {inc}
[libdefaults]
    default_realm = EXAMPLE.COM
    rdns = false
    dns_canonicalize_hostname = fallback
[realms]
    EXAMPLE.COM = {{
        kdc = kdc1.example.com
        kdc = kdc2.example.com:8888
    }}
""")
    c = load_krb5_conf(conf)
    assert c.ok and c.default_realm == "EXAMPLE.COM"
    assert c.realm("EXAMPLE.COM")["kdc"] == ["kdc1.example.com", "kdc2.example.com:8888"]
    assert c.bool_libdefault("rdns", True) is False
    assert c.bool_libdefault("dns_canonicalize_hostname", True) == "fallback"
    assert c.domain_realm() == {".example.com": "EXAMPLE.COM"}


@pytest.mark.parametrize(
    "text, where",
    [
        ("[libdefaults\n", ":1"),
        ("[realms]\n R = {\n kdc = x\n", "not closed"),
        ("default_realm = X\n", ":1"),
        ("[libdefaults]\n junk line\n", ":2"),
        ("}\n", ":1"),
    ],
)
def test_krb5conf_errors_name_the_line(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "krb5.conf"
    p.write_text(text)
    c = load_krb5_conf(p)
    assert not c.ok and where in c.error
    assert not load_krb5_conf(tmp_path / "missing").ok


def test_hosts_parsing() -> None:
    lines = parse_hosts(
        "# c\n127.0.0.1 localhost\n\n::1 localhost ip6-localhost # x\nbogus line\n10.0.0.5 A.Example.COM. a\n"
    )
    assert [(ln.lineno, ln.address, ln.names) for ln in lines] == [
        (2, "127.0.0.1", ["localhost"]),
        (4, "::1", ["localhost", "ip6-localhost"]),
        (6, "10.0.0.5", ["a.example.com", "a"]),
    ]
    assert lines[1].family == 6


def test_as_req_is_well_formed_der() -> None:
    msg = build_as_req("EXAMPLE.COM")
    outer, end = der.parse_one(msg)
    assert outer.tag == 0x6A and end == len(msg)
    body = outer.children()[0].child(4)
    assert body is not None and body.child(2).value == b"EXAMPLE.COM"  # type: ignore[union-attr]


def test_krb_error_time_and_code() -> None:
    err = der.encode(
        0x7E,
        der.sequence(
            der.ctx(0, der.integer(5)),
            der.ctx(1, der.integer(30)),
            der.ctx(4, der.generalized_time("20260101120000Z")),
            der.ctx(5, der.integer(250000)),
            der.ctx(6, der.integer(6)),
        ),
    )
    t, code = parse_reply(err)
    assert code == 6 and t == pytest.approx(1767268800.25)
    with pytest.raises(der.DerError):
        parse_reply(b"\x30\x00")
    with pytest.raises(der.DerError):
        parse_reply(b"\x7e\x05\x30")


def test_ticket_key_from_ap_req_and_gss_token() -> None:
    enc = der.sequence(
        der.ctx(0, der.integer(18)), der.ctx(1, der.integer(7)), der.ctx(2, der.encode(0x04, b"x"))
    )
    ticket = der.encode(
        0x61,
        der.sequence(
            der.ctx(0, der.integer(5)), der.ctx(1, der.general_string("R")), der.ctx(3, enc)
        ),
    )
    ap_req = der.encode(
        0x6E,
        der.sequence(der.ctx(0, der.integer(5)), der.ctx(1, der.integer(14)), der.ctx(3, ticket)),
    )
    key = ticket_key_from_ap_req(ap_req)
    assert (key.enctype, key.kvno) == (18, 7)
    token = der.encode(0x60, bytes.fromhex("06092a864886f712010202") + b"\x01\x00" + ap_req)
    assert ticket_key_from_gss_token(token) == key
    with pytest.raises(der.DerError):
        ticket_key_from_gss_token(der.encode(0x60, b"\x06\x03abc"))


@pytest.mark.parametrize(
    "text, expect",
    [
        ("ntp1", ("ntp1", 123)),
        ("ntp1:1123", ("ntp1", 1123)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", 123)),
    ],
)
def test_split_host_port(text: str, expect: tuple[str, int]) -> None:
    assert split_host_port(text, 123) == expect
    with pytest.raises(ValueError):
        split_host_port("host:abc", 1)
