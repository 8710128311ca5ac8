"""NFSv4 ACE vocabulary (RFC 8881 §6.2.1) and the ACE record with its who already resolved.

On the wire an ACE names its principal by a who-string (``alice@example.test``, ``OWNER@``);
the protocol layer resolves it through the ID mapper into :class:`Who` plus a numeric id
before the mapping sees it, and turns ids back into names on the way out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class AceType(enum.IntEnum):
    """acetype4 (RFC 8881 §6.2.1.1)."""

    ALLOW = 0
    DENY = 1
    AUDIT = 2
    ALARM = 3


class AceFlag(enum.IntFlag):
    """aceflag4 (RFC 8881 §6.2.1.4)."""

    FILE_INHERIT = 0x1
    DIRECTORY_INHERIT = 0x2
    NO_PROPAGATE_INHERIT = 0x4
    INHERIT_ONLY = 0x8
    SUCCESSFUL_ACCESS = 0x10
    FAILED_ACCESS = 0x20
    IDENTIFIER_GROUP = 0x40
    INHERITED = 0x80


class AceMask(enum.IntFlag):
    """acemask4 (RFC 8881 §6.2.1.3).  READ_DATA/LIST_DIRECTORY, WRITE_DATA/ADD_FILE and
    APPEND_DATA/ADD_SUBDIRECTORY share their bits."""

    READ_DATA = 0x1
    WRITE_DATA = 0x2
    APPEND_DATA = 0x4
    READ_NAMED_ATTRS = 0x8
    WRITE_NAMED_ATTRS = 0x10
    EXECUTE = 0x20
    DELETE_CHILD = 0x40
    READ_ATTRIBUTES = 0x80
    WRITE_ATTRIBUTES = 0x100
    WRITE_RETENTION = 0x200
    WRITE_RETENTION_HOLD = 0x400
    DELETE = 0x10000
    READ_ACL = 0x20000
    WRITE_ACL = 0x40000
    WRITE_OWNER = 0x80000
    SYNCHRONIZE = 0x100000


#: Every acemask4 bit RFC 8881 defines; others are malformed.
ACE_MASK_ALL: Final = 0x7FF | 0x1F0000


class AclSupport(enum.IntFlag):
    """aclsupport4 bits (RFC 8881 §6.2.1.2)."""

    ALLOW = 0x1
    DENY = 0x2
    AUDIT = 0x4
    ALARM = 0x8


class AclFlag(enum.IntFlag):
    """aclflag4 of the dacl and sacl attributes (RFC 8881 §6.2.2)."""

    AUTO_INHERIT = 0x1
    PROTECTED = 0x2
    DEFAULTED = 0x4


class Who(enum.Enum):
    """Whom an ACE applies to, once its who-string has been resolved."""

    OWNER = "OWNER@"
    GROUP = "GROUP@"
    EVERYONE = "EVERYONE@"
    USER = "user"
    NAMED_GROUP = "group"


#: The special who-strings a POSIX ACL can express (RFC 8881 §6.2.1.5).
SPECIAL_WHO: Final[dict[str, Who]] = {"OWNER@": Who.OWNER, "GROUP@": Who.GROUP, "EVERYONE@": Who.EVERYONE}
#: The other special who-strings of RFC 8881 §6.2.1.5: POSIX ACLs have nothing like them.
UNREPRESENTABLE_WHO: Final = frozenset({"INTERACTIVE@", "NETWORK@", "DIALUP@", "BATCH@", "ANONYMOUS@",
                                        "AUTHENTICATED@", "SERVICE@"})


@dataclass(frozen=True, slots=True)
class Ace:
    """One ACE with a resolved who: ``id`` is the uid (USER) or gid (NAMED_GROUP), else -1.
    ``flag`` carries IDENTIFIER_GROUP for named groups, as on the wire."""

    type: int
    flag: int
    mask: int
    who: Who
    id: int = -1

    def describe(self) -> str:
        """``DENY OWNER@ WRITE_ACL|...`` for log lines and error messages."""
        try:
            kind = AceType(self.type).name
        except ValueError:
            kind = f"type {self.type}"
        who = self.who.value if self.id < 0 else f"{self.who.value} {self.id}"
        return f"{kind} {who} {mask_names(self.mask)}" + (f" flags {flag_names(self.flag)}" if self.flag else "")


def mask_names(mask: int) -> str:
    names = [m.name or "" for m in AceMask if mask & m]
    rest = mask & ~ACE_MASK_ALL
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


def flag_names(flag: int) -> str:
    names = [f.name or "" for f in AceFlag if flag & f]
    rest = flag & ~0xFF
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"
