"""A small, bounded XDR codec (RFC 4506).

Decoding never trusts a length from the wire: every variable-length item is checked against
an explicit maximum *and* against the bytes actually present before anything is allocated, so
a hostile length costs nothing.  Opaque data is returned as ``memoryview`` slices of the
received record (no copy) unless the caller asks for ``bytes``.

Encoding appends to a ``bytearray``; large opaque payloads (READ data) can be kept as separate
buffers so a reply is written with ``writelines`` without joining megabytes.
"""

from __future__ import annotations

import builtins
import struct
from typing import Final

_U32: Final = struct.Struct(">I")
_I32: Final = struct.Struct(">i")
_U64: Final = struct.Struct(">Q")
_I64: Final = struct.Struct(">q")
_U32X2: Final = struct.Struct(">II")
_U32X3: Final = struct.Struct(">III")

_unpack_u32 = _U32.unpack_from
_unpack_i32 = _I32.unpack_from
_unpack_u64 = _U64.unpack_from
_unpack_i64 = _I64.unpack_from
_pack_u32 = _U32.pack
_pack_u64 = _U64.pack

_PAD: Final = (b"", b"\0\0\0", b"\0\0", b"\0")

#: Upper bound for any single opaque/string when the protocol gives none.
DEFAULT_MAX_OPAQUE: Final = 1 << 24
#: Threshold above which opaque data is kept as a separate buffer when encoding.
_ZERO_COPY_MIN: Final = 8192


class XdrError(ValueError):
    """The data is not valid XDR for the expected type (truncated, too long, bad value)."""


class Unpacker:
    """Sequential reader over a buffer.  All methods raise :class:`XdrError` on bad data."""

    __slots__ = ("_buf", "_pos", "_end")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None):
        buf = data if isinstance(data, memoryview) else memoryview(data)
        if buf.format != "B" or buf.ndim != 1:
            buf = buf.cast("B")
        self._buf = buf
        self._pos = pos
        self._end = len(buf) if end is None else end

    # -- position -----------------------------------------------------------------------
    @property
    def pos(self) -> int:
        return self._pos

    @property
    def buffer(self) -> memoryview:
        return self._buf

    def remaining(self) -> int:
        return self._end - self._pos

    def done(self) -> None:
        """Raise unless every byte was consumed (trailing garbage is an error)."""
        if self._pos != self._end:
            raise XdrError(f"{self._end - self._pos} unexpected trailing bytes")

    def rest(self) -> memoryview:
        """The unread bytes (consumes them)."""
        view = self._buf[self._pos : self._end]
        self._pos = self._end
        return view

    # -- fixed-size items -------------------------------------------------------------------
    def u32(self) -> int:
        pos = self._pos
        if pos + 4 > self._end:
            raise XdrError("truncated: expected a 32-bit integer")
        self._pos = pos + 4
        return _unpack_u32(self._buf, pos)[0]  # type: ignore[no-any-return]

    def i32(self) -> int:
        pos = self._pos
        if pos + 4 > self._end:
            raise XdrError("truncated: expected a 32-bit integer")
        self._pos = pos + 4
        return _unpack_i32(self._buf, pos)[0]  # type: ignore[no-any-return]

    def u64(self) -> int:
        pos = self._pos
        if pos + 8 > self._end:
            raise XdrError("truncated: expected a 64-bit integer")
        self._pos = pos + 8
        return _unpack_u64(self._buf, pos)[0]  # type: ignore[no-any-return]

    def i64(self) -> int:
        pos = self._pos
        if pos + 8 > self._end:
            raise XdrError("truncated: expected a 64-bit integer")
        self._pos = pos + 8
        return _unpack_i64(self._buf, pos)[0]  # type: ignore[no-any-return]

    def bool(self) -> bool:
        v = self.u32()
        if v > 1:
            raise XdrError(f"invalid boolean {v}")
        return v == 1

    def enum(self, allowed: frozenset[int] | range) -> int:
        v = self.i32()
        if v not in allowed:
            raise XdrError(f"invalid enum value {v}")
        return v

    # -- variable-size items --------------------------------------------------------------------
    def fixed_view(self, n: int) -> memoryview:
        """Fixed-length opaque of ``n`` bytes (plus padding) as a view."""
        pos = self._pos
        end = pos + n
        padded = end + (-n & 3)
        if padded > self._end:
            raise XdrError(f"truncated: expected {n} bytes of opaque data")
        self._pos = padded
        return self._buf[pos:end]

    def fixed(self, n: int) -> bytes:
        return bytes(self.fixed_view(n))

    def opaque_view(self, maxlen: int = DEFAULT_MAX_OPAQUE) -> memoryview:
        """Variable-length opaque<maxlen> as a zero-copy view."""
        n = self.u32()
        if n > maxlen:
            raise XdrError(f"opaque length {n} exceeds the limit of {maxlen}")
        return self.fixed_view(n)

    def opaque(self, maxlen: int = DEFAULT_MAX_OPAQUE) -> bytes:
        return bytes(self.opaque_view(maxlen))

    def string(self, maxlen: int = DEFAULT_MAX_OPAQUE) -> bytes:
        """A string<maxlen> as raw bytes (NFSv4 names are UTF-8 but validated by the caller)."""
        return bytes(self.opaque_view(maxlen))

    def array_len(self, maxcount: int, min_item_size: int = 4) -> int:
        """Count of a variable-length array, bounded by ``maxcount`` and by the bytes left.

        ``min_item_size`` is the smallest encoding of one element, so a count that the
        remaining bytes cannot possibly hold is refused before any element is decoded.
        """
        n = self.u32()
        if n > maxcount:
            raise XdrError(f"array count {n} exceeds the limit of {maxcount}")
        if n * min_item_size > self._end - self._pos:
            raise XdrError(f"array count {n} exceeds the data present")
        return n

    def u32_array(self, maxcount: int) -> list[int]:
        n = self.array_len(maxcount)
        pos = self._pos
        self._pos = pos + 4 * n
        return list(struct.unpack_from(f">{n}I", self._buf, pos))

    def opt(self) -> builtins.bool:
        """The discriminant of an optional-data item (``*type``)."""
        return self.bool()


class Packer:
    """Appends XDR items; ``getvalue()`` or ``chunks()`` yields the encoding."""

    __slots__ = ("_buf", "_chunks", "_size")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._chunks: list[bytes | bytearray | memoryview] | None = None
        self._size = 0  # bytes held in _chunks

    def __len__(self) -> int:
        return self._size + len(self._buf)

    def u32(self, v: int) -> None:
        self._buf += _pack_u32(v)

    def i32(self, v: int) -> None:
        self._buf += _I32.pack(v)

    def u64(self, v: int) -> None:
        self._buf += _pack_u64(v)

    def i64(self, v: int) -> None:
        self._buf += _I64.pack(v)

    def u32x2(self, a: int, b: int) -> None:
        self._buf += _U32X2.pack(a, b)

    def u32x3(self, a: int, b: int, c: int) -> None:
        self._buf += _U32X3.pack(a, b, c)

    def bool(self, v: bool) -> None:
        self._buf += _pack_u32(1 if v else 0)

    def fixed(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        if n >= _ZERO_COPY_MIN:
            self._flush()
            assert self._chunks is not None
            self._chunks.append(data)
            self._size += n
            pad = _PAD[n & 3]
            if pad:
                self._buf += pad
            return
        self._buf += data
        self._buf += _PAD[n & 3]

    def opaque(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += _pack_u32(len(data))
        self.fixed(data)

    string = opaque

    def u32_array(self, values: list[int] | tuple[int, ...]) -> None:
        n = len(values)
        self._buf += _pack_u32(n)
        if n:
            self._buf += struct.pack(f">{n}I", *values)

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        """Already-encoded XDR."""
        if len(data) >= _ZERO_COPY_MIN:
            self._flush()
            assert self._chunks is not None
            self._chunks.append(data)
            self._size += len(data)
        else:
            self._buf += data

    def _flush(self) -> None:
        if self._chunks is None:
            self._chunks = []
        if self._buf:
            self._chunks.append(self._buf)
            self._size += len(self._buf)
            self._buf = bytearray()

    def chunks(self) -> list[bytes | bytearray | memoryview]:
        """The encoding as a list of buffers (for ``transport.writelines``)."""
        if self._chunks is None:
            return [self._buf]
        return [*self._chunks, self._buf] if self._buf else list(self._chunks)

    def getvalue(self) -> bytes:
        if self._chunks is None:
            return bytes(self._buf)
        return b"".join([*self._chunks, self._buf])
