"""Owner string, numeric string and principal parsing; RFC 4515 escaping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idmap.filters import escape
from idmap.names import NameError_, parse_numeric, parse_principal, split_owner


@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("1000", 1000), ("4294967295", 2**32 - 1),
    ("01000", None), ("4294967296", None), ("-1", None), ("1e3", None), ("", None),
    ("１２", None),  # fullwidth digits are not RFC 8881 §5.9 decimal digits
])
def test_numeric_owner_strings(text: str, expected: int | None) -> None:
    assert parse_numeric(text) == expected


def test_owner_split_at_last_at_and_domain_case() -> None:
    o = split_owner("first.last@corp@Example.COM.")
    assert (o.name, o.domain) == ("first.last@corp", "example.com")
    for bad in ("alice", "@example.com", "alice@", "", "a\x00b@example.com"):
        with pytest.raises(NameError_):
            split_owner(bad)


def test_principal_parsing() -> None:
    p = parse_principal("nfs/server.example.com@EXAMPLE.COM")
    assert (p.primary, p.instance, p.realm) == ("nfs", "server.example.com", "EXAMPLE.COM")
    p = parse_principal(r"odd\/name\@x@EXAMPLE.COM")
    assert (p.components, p.realm) == (("odd/name@x",), "EXAMPLE.COM")
    assert str(p) == r"odd\/name\@x@EXAMPLE.COM"
    for bad in ("alice", "alice@", "@R", "a//b@R", "a@R@S", "trailing\\", "a\x00@R"):
        with pytest.raises(NameError_):
            parse_principal(bad)


def test_escape_rfc4515_specials() -> None:
    assert escape("a*b(c)d\\e\x00f") == r"a\2ab\28c\29d\5ce\00f"
    assert escape("plain.name-ü") == "plain.name-ü"


@given(st.text())
def test_escaped_values_contain_no_filter_syntax(value: str) -> None:
    out = escape(value)
    assert not set(out) & {"*", "(", ")", "\x00"}
    # every backslash starts a two-hex-digit escape
    i = 0
    while (i := out.find("\\", i)) != -1:
        assert out[i + 1:i + 3] in ("2a", "28", "29", "5c", "00")
        i += 3
