"""The keytab reader: both file versions, holes, and every kind of damaged file."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keytabs.keytab import (
    VERSION_1,
    VERSION_2,
    KeytabEntry,
    KeytabError,
    Principal,
    parse_keytab,
    read_keytab,
    serialize_keytab,
    write_keytab,
)

NFS = Principal(("nfs", "nfs1.example.com"), "EXAMPLE.COM", 3)
ENTRIES = [
    KeytabEntry(NFS, 3, 18, 1_700_000_000, b"k" * 32),
    KeytabEntry(NFS, 3, 17, 1_700_000_000, b"k" * 16),
    KeytabEntry(
        Principal(("host", "nfs1.example.com"), "EXAMPLE.COM"), 300, 23, 1_700_000_001, b"r" * 16
    ),
]


@pytest.mark.parametrize("version", [VERSION_1, VERSION_2])
def test_round_trip_both_versions(version: int) -> None:
    kt = parse_keytab(serialize_keytab(ENTRIES, version))
    assert kt.version == version
    got = [(str(e.principal), e.kvno, e.enctype, e.timestamp) for e in kt.entries]
    assert got == [(str(e.principal), e.kvno, e.enctype, e.timestamp) for e in ENTRIES]
    # kvno above 255 survives through the trailing 32-bit field
    assert kt.entries[2].kvno == 300


def test_version_502_is_big_endian_with_name_type() -> None:
    data = serialize_keytab(ENTRIES[:1])
    assert data[:2] == b"\x05\x02"
    assert parse_keytab(data).entries[0].principal.name_type == 3


def test_holes_are_skipped() -> None:
    data = bytearray(serialize_keytab(ENTRIES[:1]))
    data += struct.pack(">i", -10) + b"\0" * 10
    data += serialize_keytab(ENTRIES[1:2])[2:]
    kt = parse_keytab(bytes(data))
    assert [e.enctype for e in kt.entries] == [18, 17]


def test_eight_bit_kvno_used_without_trailing_field() -> None:
    data = bytearray(serialize_keytab(ENTRIES[:1]))
    (length,) = struct.unpack_from(">i", data, 2)
    data[2:6] = struct.pack(">i", length - 4)
    kt = parse_keytab(bytes(data[:-4]))
    assert kt.entries[0].kvno == 3


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty or truncated"),
        (b"\x05", "empty or truncated"),
        (b"\x07\x02", "not a keytab"),
        (b"\x05\x03", "unsupported keytab version 0x0503"),
        (serialize_keytab(ENTRIES)[:-5], "truncated"),
        (serialize_keytab(ENTRIES) + b"\x00\x00", "stray bytes"),
    ],
)
def test_bad_files_give_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(KeytabError, match=message):
        parse_keytab(data, "test.keytab")


def test_lying_inner_length_is_reported() -> None:
    data = bytearray(serialize_keytab(ENTRIES[:1]))
    # realm length claims 200 bytes inside a record that is much shorter
    struct.pack_into(">H", data, 8, 200)
    with pytest.raises(KeytabError, match="length fields are wrong"):
        parse_keytab(bytes(data), "lie.keytab")


def test_huge_record_length_is_refused() -> None:
    data = b"\x05\x02" + struct.pack(">i", 0x7FFFFFFF) + b"\0" * 10
    with pytest.raises(KeytabError, match="corrupt"):
        parse_keytab(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_keytab_error(blob: bytes) -> None:
    for data in (blob, b"\x05\x02" + blob, b"\x05\x01" + blob):
        try:
            parse_keytab(data)
        except KeytabError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200))
def test_every_truncation_is_a_keytab_error(cut: int) -> None:
    data = serialize_keytab(ENTRIES)
    cut = min(cut, len(data) - 1)
    try:
        kt = parse_keytab(data[:cut])
    except KeytabError:
        return
    assert len(kt.entries) < len(ENTRIES)  # only a cut exactly at a record boundary parses


def test_read_keytab_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(KeytabError, match="no such file"):
        read_keytab(tmp_path / "missing")
    with pytest.raises(KeytabError, match="is a directory"):
        read_keytab(tmp_path)


def test_write_keytab_is_private(tmp_path: Path) -> None:
    p = write_keytab(tmp_path / "k", ENTRIES)
    assert p.stat().st_mode & 0o777 == 0o600
    assert len(read_keytab(f"FILE:{p}").entries) == 3


def test_principal_parse_and_match() -> None:
    p = Principal.parse("nfs/NFS1.Example.com@EXAMPLE.COM")
    assert p.service == "nfs" and p.host == "NFS1.Example.com" and p.realm == "EXAMPLE.COM"
    assert p.matches(Principal(("nfs", "nfs1.example.com"), "EXAMPLE.COM"))
    assert not p.matches(Principal(("nfs", "nfs1.example.com"), "example.com"))
    assert not p.matches(Principal(("NFS", "nfs1.example.com"), "EXAMPLE.COM"))
    assert str(Principal.parse("a\\/b@R")) == "a\\/b@R"
    assert Principal.parse("user", "DEF").realm == "DEF"
    with pytest.raises(ValueError):
        Principal.parse("")
