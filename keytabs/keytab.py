"""Reading and writing MIT keytab files.

The file format (MIT krb5 ``src/lib/krb5/keytab/kt_file.c``, documented in keytab_file_format
in the MIT docs): two bytes ``0x05 0x0N`` then records.  Each record starts with a signed 32-bit
length; a negative length marks a hole left by a deleted entry.  Version 0x502 stores integers
big-endian and carries a name type; version 0x501 stores them in the writer's native order
(little-endian on every platform that still produces such files), counts the realm as a name
component and has no name type.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from keytabs.enctypes import enctype_name

VERSION_1 = 0x0501
VERSION_2 = 0x0502
KRB5_NT_PRINCIPAL = 1
KRB5_NT_SRV_HST = 3

# Sanity limits so a hostile or corrupt file cannot make us allocate without bound.
MAX_RECORD = 1 << 20
MAX_COMPONENTS = 64


class KeytabError(Exception):
    """A keytab file that cannot be used; the message says where and why."""


_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "0": "\x00"}


def split_name(text: str) -> tuple[tuple[str, ...], str | None]:
    """Split a Kerberos principal name into its components and realm (None when there is no
    ``@``), with krb5_parse_name's backslash escapes; raises ValueError when malformed."""
    components: list[str] = []
    current: list[str] = []
    realm: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                raise ValueError("trailing backslash")
            nxt = text[i + 1]
            current.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if ch in "/@" and realm is None:
            components.append("".join(current))
            current = []
            if ch == "@":
                realm = ""
        elif ch == "@":
            raise ValueError("more than one unescaped @")
        else:
            current.append(ch)
        i += 1
    if realm is None:
        components.append("".join(current))
        return tuple(components), None
    return tuple(components), "".join(current)


@dataclass(slots=True, frozen=True)
class Principal:
    components: tuple[str, ...]
    realm: str
    name_type: int = KRB5_NT_PRINCIPAL

    @classmethod
    def parse(cls, text: str, default_realm: str = "") -> Principal:
        """Parse ``nfs/host.example.com@REALM`` (backslash escapes as in krb5_parse_name)."""
        parts, realm = split_name(text)
        comps = list(parts)
        if realm is None:
            realm = default_realm
        if not comps or comps == [""]:
            raise ValueError(f"empty principal name: {text!r}")
        return cls(tuple(comps), realm)

    @property
    def service(self) -> str:
        return self.components[0]

    @property
    def host(self) -> str | None:
        return self.components[1] if len(self.components) == 2 else None

    def __str__(self) -> str:
        def esc(s: str) -> str:
            return s.replace("\\", "\\\\").replace("/", "\\/").replace("@", "\\@")

        name = "/".join(esc(c) for c in self.components)
        return f"{name}@{esc(self.realm)}" if self.realm else name

    def matches(self, other: Principal) -> bool:
        """Same principal; host names compare case-insensitively (DNS names)."""
        if self.realm != other.realm or len(self.components) != len(other.components):
            return False
        if self.components[0] != other.components[0]:
            return False
        return all(
            a.lower() == b.lower() for a, b in zip(self.components[1:], other.components[1:])
        )


@dataclass(slots=True, frozen=True)
class KeytabEntry:
    principal: Principal
    kvno: int
    enctype: int
    timestamp: int
    key: bytes = field(repr=False, default=b"")

    @property
    def enctype_name(self) -> str:
        return enctype_name(self.enctype)


@dataclass(slots=True)
class Keytab:
    path: str
    version: int
    entries: list[KeytabEntry]

    def principals(self) -> list[Principal]:
        seen: dict[str, Principal] = {}
        for e in self.entries:
            seen.setdefault(str(e.principal), e.principal)
        return list(seen.values())

    def entries_for(self, principal: Principal) -> list[KeytabEntry]:
        return [e for e in self.entries if e.principal.matches(principal)]


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int, order: str, source: str) -> None:
        self.data = data
        self.pos = pos
        self.end = end
        self.order = order
        self.source = source

    def _need(self, n: int, what: str) -> None:
        if self.pos + n > self.end:
            raise KeytabError(
                f"{self.source}: record ends inside {what} at byte {self.pos} "
                f"(needs {n} bytes, {self.end - self.pos} left): the length fields are wrong"
            )

    def u8(self, what: str) -> int:
        self._need(1, what)
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self, what: str) -> int:
        self._need(2, what)
        (v,) = struct.unpack_from(self.order + "H", self.data, self.pos)
        self.pos += 2
        return int(v)

    def u32(self, what: str) -> int:
        self._need(4, what)
        (v,) = struct.unpack_from(self.order + "I", self.data, self.pos)
        self.pos += 4
        return int(v)

    def octets(self, what: str) -> bytes:
        n = self.u16(f"length of {what}")
        self._need(n, what)
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(v)

    def text(self, what: str) -> str:
        raw = self.octets(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def parse_keytab(data: bytes, source: str = "keytab") -> Keytab:
    """Parse keytab bytes.  Raises KeytabError with the offset of the first problem."""
    if len(data) < 2:
        raise KeytabError(f"{source}: file is empty or truncated ({len(data)} bytes); not a keytab")
    if data[0] != 0x05:
        raise KeytabError(f"{source}: not a keytab (first byte 0x{data[0]:02x}, expected 0x05)")
    version = (data[0] << 8) | data[1]
    if version == VERSION_2:
        order = ">"
    elif version == VERSION_1:
        order = "<"
    else:
        raise KeytabError(
            f"{source}: unsupported keytab version 0x{version:04x} (supported: 0x0501, 0x0502)"
        )
    entries: list[KeytabEntry] = []
    pos = 2
    while pos < len(data):
        if pos + 4 > len(data):
            raise KeytabError(
                f"{source}: truncated at byte {pos}: {len(data) - pos} stray bytes where a "
                "record length should be"
            )
        (length,) = struct.unpack_from(order + "i", data, pos)
        pos += 4
        if length == 0:
            # MIT treats a zero length as the end of the entries.
            break
        size = abs(length)
        if size > MAX_RECORD:
            raise KeytabError(f"{source}: record at byte {pos - 4} claims {size} bytes; corrupt")
        if pos + size > len(data):
            raise KeytabError(
                f"{source}: truncated: record at byte {pos - 4} claims {size} bytes but only "
                f"{len(data) - pos} remain"
            )
        if length < 0:  # a hole left by a removed entry
            pos += size
            continue
        entries.append(_parse_record(data, pos, pos + size, order, version, source))
        pos += size
    return Keytab(source, version, entries)


def _parse_record(
    data: bytes, start: int, end: int, order: str, version: int, source: str
) -> KeytabEntry:
    r = _Reader(data, start, end, order, f"{source} (record at byte {start - 4})")
    count = r.u16("component count")
    if version == VERSION_1:
        count -= 1  # 0x501 counts the realm as a component
    if count < 1 or count > MAX_COMPONENTS:
        raise KeytabError(f"{r.source}: implausible principal component count {count}")
    realm = r.text("realm")
    comps = tuple(r.text("principal component") for _ in range(count))
    name_type = r.u32("name type") if version == VERSION_2 else KRB5_NT_PRINCIPAL
    timestamp = r.u32("timestamp")
    kvno = r.u8("kvno")
    enctype = r.u16("enctype")
    key = r.octets("key")
    # A 32-bit kvno follows when the record has room for it; it wins when non-zero.
    if end - r.pos >= 4:
        kvno32 = r.u32("kvno")
        if kvno32:
            kvno = kvno32
    return KeytabEntry(Principal(comps, realm, name_type), kvno, enctype, timestamp, key)


def read_keytab(path: str | os.PathLike[str]) -> Keytab:
    """Read and parse a keytab file; every failure is a KeytabError naming the file."""
    p = os.fspath(path)
    p = p.removeprefix("FILE:")
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_RECORD * 64)
    except FileNotFoundError:
        raise KeytabError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise KeytabError(f"{p}: is a directory, not a keytab file") from None
    except PermissionError:
        raise KeytabError(f"{p}: cannot read: permission denied (uid {os.geteuid()})") from None
    except OSError as exc:
        raise KeytabError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_keytab(data, p)


def serialize_keytab(entries: Iterable[KeytabEntry], version: int = VERSION_2) -> bytes:
    """Encode entries as a keytab file (used to repair or filter keytabs, and by tests)."""
    order = ">" if version == VERSION_2 else "<"
    out = bytearray(struct.pack(">H", version))
    for e in entries:
        rec = bytearray()
        count = len(e.principal.components) + (1 if version == VERSION_1 else 0)
        rec += struct.pack(order + "H", count)
        for s in (e.principal.realm, *e.principal.components):
            b = s.encode("utf-8")
            rec += struct.pack(order + "H", len(b)) + b
        if version == VERSION_2:
            rec += struct.pack(order + "I", e.principal.name_type)
        rec += struct.pack(order + "IBH", e.timestamp, e.kvno & 0xFF, e.enctype)
        rec += struct.pack(order + "H", len(e.key)) + e.key
        rec += struct.pack(order + "I", e.kvno)
        out += struct.pack(order + "i", len(rec)) + rec
    return bytes(out)


def write_keytab(
    path: str | os.PathLike[str], entries: Iterable[KeytabEntry], mode: int = 0o600
) -> Path:
    """Write a keytab atomically with the given mode."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(serialize_keytab(entries))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
