"""Just enough ASN.1 DER to read and write the few Kerberos messages the checks need.

Kerberos messages are DER (RFC 4120 §5.1); the checks only need to build an AS-REQ and to pick
a handful of fields out of KRB-ERROR, Ticket and AP-REQ, so a full ASN.1 library is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass


class DerError(ValueError):
    pass


@dataclass(slots=True, frozen=True)
class Tlv:
    tag: int  # first identifier octet (class | constructed | number), low-tag-number form only
    value: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Tlv]:
        return parse_all(self.value)

    def child(self, context_number: int) -> Tlv | None:
        """The value inside an explicit context tag ``[n]`` of a SEQUENCE's children."""
        for c in self.children():
            if c.tag == (0xA0 | context_number):
                inner = c.children()
                return inner[0] if inner else None
        return None

    def as_int(self) -> int:
        if self.tag != 0x02:
            raise DerError(f"expected INTEGER, got tag 0x{self.tag:02x}")
        return int.from_bytes(self.value, "big", signed=True)


def parse_one(data: bytes, pos: int = 0) -> tuple[Tlv, int]:
    if pos + 2 > len(data):
        raise DerError("truncated DER header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used by Kerberos")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise DerError("DER value runs past the end of the data")
    return Tlv(tag, bytes(data[pos : pos + length])), pos + length


def parse_all(data: bytes) -> list[Tlv]:
    out = []
    pos = 0
    while pos < len(data):
        tlv, pos = parse_one(data, pos)
        out.append(tlv)
    return out


def encode(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        head = bytes([tag, n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(raw)]) + raw
    return head + value


def integer(v: int) -> bytes:
    raw = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True)
    return encode(0x02, raw)


def sequence(*items: bytes) -> bytes:
    return encode(0x30, b"".join(items))


def ctx(n: int, inner: bytes) -> bytes:
    return encode(0xA0 | n, inner)


def general_string(s: str) -> bytes:
    return encode(0x1B, s.encode("utf-8"))


def generalized_time(s: str) -> bytes:
    return encode(0x18, s.encode("ascii"))


def bit_string(raw: bytes) -> bytes:
    return encode(0x03, b"\x00" + raw)
