"""Parsing of NFSv4 owner strings and Kerberos principal names.

RFC 8881 §5.9: owner and owner_group are ``user@dns_domain`` strings, or, with the
special meaning servers may give them, decimal digits without leading zeros (numeric ids
for AUTH_SYS compatibility).  Kerberos principal names (RFC 1964 §2.1.1) are
``component[/component...]@REALM`` with ``\\`` escaping ``/``, ``@`` and itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keytabs.keytab import split_name

# RFC 8881 §5.9: "a string of decimal digits ... with no leading zeros"; 0 itself is "0".
_NUMERIC = re.compile(r"0|[1-9][0-9]{0,9}")
MAX_ID = 2**32 - 1
MAX_NAME = 1024  # longer strings are not names, they are abuse


class NameError_(ValueError):
    """A string that is not a well-formed owner string or principal."""


def parse_numeric(text: str) -> int | None:
    """The id of a numeric owner string, or None when ``text`` is not one."""
    if _NUMERIC.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= MAX_ID else None


@dataclass(slots=True, frozen=True)
class OwnerName:
    name: str
    domain: str  # lower-cased


def split_owner(owner: str) -> OwnerName:
    """Split ``user@domain`` at the last ``@`` (user parts may contain ``@`` in UPN style)."""
    if not owner or len(owner) > MAX_NAME:
        raise NameError_("empty or overlong owner string")
    if "\x00" in owner:
        raise NameError_("owner string contains a NUL byte")
    name, sep, domain = owner.rpartition("@")
    if not sep:
        raise NameError_("no @domain part")
    if not name:
        raise NameError_("empty user part")
    if not domain:
        raise NameError_("empty domain part")
    return OwnerName(name, domain.rstrip(".").lower())


@dataclass(slots=True, frozen=True)
class Principal:
    """A parsed Kerberos principal: ``components`` joined by ``/``, then ``@realm``."""

    components: tuple[str, ...]
    realm: str

    @property
    def primary(self) -> str:
        return self.components[0]

    @property
    def instance(self) -> str | None:
        return "/".join(self.components[1:]) if len(self.components) > 1 else None

    def __str__(self) -> str:
        def esc(part: str) -> str:
            return part.replace("\\", "\\\\").replace("/", "\\/").replace("@", "\\@")

        return "/".join(esc(c) for c in self.components) + "@" + esc(self.realm)


def parse_principal(text: str) -> Principal:
    """Parse ``name[/instance]@REALM``; raises :class:`NameError_` when malformed."""
    if not text or len(text) > MAX_NAME:
        raise NameError_("empty or overlong principal")
    if "\x00" in text:
        raise NameError_("principal contains a NUL byte")
    try:
        parts, realm = split_name(text)
    except ValueError as exc:
        raise NameError_(str(exc)) from None
    components = list(parts)
    if realm is None:
        raise NameError_("no @REALM part")
    if not realm:
        raise NameError_("empty realm")
    if any(not c for c in components):
        raise NameError_("empty name component")
    if any("\x00" in c for c in components):
        raise NameError_("principal contains a NUL byte")
    return Principal(tuple(components), realm)
