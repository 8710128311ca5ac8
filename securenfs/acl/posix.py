"""POSIX ACLs as Linux keeps them, and their xattr format.

``system.posix_acl_access`` and ``system.posix_acl_default`` hold a little-endian 32-bit
version (2) followed by 8-byte entries: 16-bit tag, 16-bit permission bits (r=4, w=2, x=1)
and a 32-bit id (the uid of a USER entry, the gid of a GROUP entry, 0xFFFFFFFF for the
others).  The kernel accepts an ACL only in the canonical order: USER_OBJ, USER entries,
GROUP_OBJ, GROUP entries, MASK, OTHER, named entries without duplicates, and a MASK exactly
when there are named entries.  :meth:`PosixAcl.build` produces that order; :func:`decode`
refuses anything else.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

VERSION: Final = 2
ACCESS_XATTR: Final = "system.posix_acl_access"
DEFAULT_XATTR: Final = "system.posix_acl_default"
#: The id field of entries that name no one.
UNDEFINED_ID: Final = 0xFFFFFFFF
#: Most entries decoded from one xattr (ext4 and XFS keep far fewer in one block).
MAX_ENTRIES: Final = 8192

_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")

READ: Final = 4
WRITE: Final = 2
EXECUTE: Final = 1


class Tag(enum.IntEnum):
    USER_OBJ = 0x01
    USER = 0x02
    GROUP_OBJ = 0x04
    GROUP = 0x08
    MASK = 0x10
    OTHER = 0x20


_ORDER: Final = (Tag.USER_OBJ, Tag.USER, Tag.GROUP_OBJ, Tag.GROUP, Tag.MASK, Tag.OTHER)


class PosixAclError(ValueError):
    """An xattr value or entry list that is not a valid POSIX ACL."""


@dataclass(frozen=True, slots=True, order=True)
class Entry:
    tag: Tag
    id: int  # uid / gid for USER / GROUP, UNDEFINED_ID otherwise
    perm: int

    @property
    def named(self) -> bool:
        return self.tag in (Tag.USER, Tag.GROUP)


@dataclass(frozen=True, slots=True)
class PosixAcl:
    """A valid POSIX ACL in canonical order (construct with :meth:`build`)."""

    entries: tuple[Entry, ...]

    @classmethod
    def build(cls, owner: int, group: int, other: int, users: Iterable[tuple[int, int]] = (),
              groups: Iterable[tuple[int, int]] = (), mask: int | None = None) -> PosixAcl:
        """From permission bits; ``users``/``groups`` are (id, perm) pairs.  The mask must
        be given exactly when there are named entries."""
        u = sorted(users)
        g = sorted(groups)
        if (mask is None) != (not u and not g):
            raise PosixAclError("a MASK entry is needed exactly when there are named entries")
        entries = [Entry(Tag.USER_OBJ, UNDEFINED_ID, owner)]
        entries += [Entry(Tag.USER, i, p) for i, p in u]
        entries.append(Entry(Tag.GROUP_OBJ, UNDEFINED_ID, group))
        entries += [Entry(Tag.GROUP, i, p) for i, p in g]
        if mask is not None:
            entries.append(Entry(Tag.MASK, UNDEFINED_ID, mask))
        entries.append(Entry(Tag.OTHER, UNDEFINED_ID, other))
        acl = cls(tuple(entries))
        acl.check()
        return acl

    @classmethod
    def from_mode(cls, mode: int) -> PosixAcl:
        """The three-entry ACL the permission bits of ``mode`` stand for."""
        return cls.build((mode >> 6) & 7, (mode >> 3) & 7, mode & 7)

    def check(self) -> None:
        """Raise PosixAclError unless the entries are valid and in canonical order."""
        prev: Entry | None = None
        seen: set[Tag] = set()
        for e in self.entries:
            if not 0 <= e.perm <= 7:
                raise PosixAclError(f"permission bits {e.perm:#o} of a {e.tag.name} entry")
            if e.named:
                if not 0 <= e.id < UNDEFINED_ID:
                    raise PosixAclError(f"{e.tag.name} entry with id {e.id}")
            elif e.tag in seen:
                raise PosixAclError(f"two {e.tag.name} entries")
            if prev is not None:
                if _ORDER.index(e.tag) < _ORDER.index(prev.tag):
                    raise PosixAclError(f"{e.tag.name} entry after {prev.tag.name}")
                if e.named and e.tag == prev.tag and e.id <= prev.id:
                    raise PosixAclError(f"{e.tag.name} entries for id {e.id} out of order or repeated")
            seen.add(e.tag)
            prev = e
        for need in (Tag.USER_OBJ, Tag.GROUP_OBJ, Tag.OTHER):
            if need not in seen:
                raise PosixAclError(f"no {need.name} entry")
        named = Tag.USER in seen or Tag.GROUP in seen
        if named and Tag.MASK not in seen:
            raise PosixAclError("named entries without a MASK entry")

    def get(self, tag: Tag) -> int | None:
        for e in self.entries:
            if e.tag == tag:
                return e.perm
        return None

    def named(self, tag: Tag) -> list[tuple[int, int]]:
        return [(e.id, e.perm) for e in self.entries if e.tag == tag]

    @property
    def owner(self) -> int:
        return self.get(Tag.USER_OBJ) or 0

    @property
    def group(self) -> int:
        return self.get(Tag.GROUP_OBJ) or 0

    @property
    def other(self) -> int:
        return self.get(Tag.OTHER) or 0

    @property
    def mask(self) -> int | None:
        return self.get(Tag.MASK)

    @property
    def minimal(self) -> bool:
        """Only the three entries the mode bits already say."""
        return len(self.entries) == 3

    def mode_bits(self) -> int:
        """The permission bits of the mode this ACL implies (the group class shows the
        mask when there is one, as acl(5) says)."""
        mask = self.mask
        return (self.owner << 6) | ((self.group if mask is None else mask) << 3) | self.other


def encode(acl: PosixAcl) -> bytes:
    """The xattr value of ``acl``."""
    return _HEADER.pack(VERSION) + b"".join(_ENTRY.pack(e.tag, e.perm, e.id) for e in acl.entries)


def decode(data: bytes) -> PosixAcl:
    """The ACL in an xattr value; PosixAclError for anything the kernel would not have
    written."""
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
        raise PosixAclError(f"xattr value of {len(data)} bytes is not a header plus whole entries")
    (version,) = _HEADER.unpack_from(data)
    if version != VERSION:
        raise PosixAclError(f"POSIX ACL xattr version {version}, expected {VERSION}")
    count = (len(data) - _HEADER.size) // _ENTRY.size
    if count > MAX_ENTRIES:
        raise PosixAclError(f"{count} entries exceed {MAX_ENTRIES}")
    entries: list[Entry] = []
    for i in range(count):
        tag, perm, ident = _ENTRY.unpack_from(data, _HEADER.size + i * _ENTRY.size)
        try:
            t = Tag(tag)
        except ValueError:
            raise PosixAclError(f"unknown entry tag {tag:#x}") from None
        entries.append(Entry(t, ident if t in (Tag.USER, Tag.GROUP) else UNDEFINED_ID, perm))
    # The kernel checks the order of the tags but not of the ids within USER and GROUP.
    entries.sort(key=lambda e: (_ORDER.index(e.tag), e.id))
    acl = PosixAcl(tuple(entries))
    acl.check()
    return acl
