"""XDR codec: round trips, bounds, and hostile lengths."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securenfs.xdr import Packer, Unpacker, XdrError


@given(
    u32=st.integers(0, 2**32 - 1),
    i32=st.integers(-(2**31), 2**31 - 1),
    u64=st.integers(0, 2**64 - 1),
    i64=st.integers(-(2**63), 2**63 - 1),
    flag=st.booleans(),
    blob=st.binary(max_size=20000),
    arr=st.lists(st.integers(0, 2**32 - 1), max_size=20),
)
def test_round_trip(u32: int, i32: int, u64: int, i64: int, flag: bool, blob: bytes, arr: list[int]) -> None:
    p = Packer()
    p.u32(u32)
    p.i32(i32)
    p.u64(u64)
    p.i64(i64)
    p.bool(flag)
    p.opaque(blob)
    p.u32_array(arr)
    p.fixed(b"abc")
    data = p.getvalue()
    assert len(data) % 4 == 0 and len(data) == len(p)
    assert b"".join(bytes(c) for c in p.chunks()) == data
    u = Unpacker(data)
    assert u.u32() == u32
    assert u.i32() == i32
    assert u.u64() == u64
    assert u.i64() == i64
    assert u.bool() is flag
    assert u.opaque() == blob
    assert u.u32_array(100) == arr
    assert u.fixed(3) == b"abc"
    u.done()


def test_known_encoding() -> None:
    p = Packer()
    p.string(b"hello")
    p.u32(7)
    assert p.getvalue() == b"\x00\x00\x00\x05hello\x00\x00\x00\x00\x00\x00\x07"


def test_opaque_view_is_zero_copy() -> None:
    data = bytearray(struct.pack(">I", 4) + b"abcd")
    v = Unpacker(data).opaque_view()
    data[4] = ord("z")
    assert bytes(v) == b"zbcd"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00",
        struct.pack(">I", 0xFFFFFFFF),  # opaque length 4 GiB with nothing behind it
        struct.pack(">I", 8) + b"abc",  # length larger than the data
        struct.pack(">I", 3) + b"abc",  # padding missing
    ],
)
def test_truncated_or_lying_opaque(data: bytes) -> None:
    with pytest.raises(XdrError):
        Unpacker(data).opaque()


def test_limits_are_checked_before_allocation() -> None:
    with pytest.raises(XdrError, match="exceeds the limit"):
        Unpacker(struct.pack(">I", 300) + b"x" * 300).opaque(255)
    with pytest.raises(XdrError, match="exceeds the limit"):
        Unpacker(struct.pack(">I", 17) + b"\0" * 68).u32_array(16)
    # a count the remaining bytes cannot hold is refused even under the limit
    with pytest.raises(XdrError, match="data present"):
        Unpacker(struct.pack(">I", 1000) + b"\0" * 8).array_len(100000)


def test_bad_bool_and_trailing_bytes() -> None:
    with pytest.raises(XdrError):
        Unpacker(struct.pack(">I", 2)).bool()
    u = Unpacker(b"\0\0\0\1\0")
    u.u32()
    with pytest.raises(XdrError, match="trailing"):
        u.done()


def test_large_payload_kept_as_separate_chunk() -> None:
    big = b"x" * 100000
    p = Packer()
    p.u32(1)
    p.opaque(big)
    p.u32(2)
    chunks = p.chunks()
    assert any(c is big for c in chunks)  # not copied into the header buffer
    data = p.getvalue()
    u = Unpacker(data)
    assert u.u32() == 1 and u.opaque() == big and u.u32() == 2
