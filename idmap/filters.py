"""RFC 4515 escaping of values placed into LDAP search filters.

RFC 4515 §3: in an assertion value the characters ``*`` (0x2a), ``(`` (0x28), ``)``
(0x29), ``\\`` (0x5c) and NUL (0x00) must be written as a backslash and two hex digits.
Every value taken from a request (owner strings, principals, DNs of members) goes
through :func:`escape` before it is put into a filter, so a name such as ``*)(uid=*``
matches only an entry literally called that.
"""

from __future__ import annotations

_SPECIAL = {"*": "\\2a", "(": "\\28", ")": "\\29", "\\": "\\5c", "\x00": "\\00"}


def escape(value: str) -> str:
    """Escape an assertion value (RFC 4515 §3)."""
    return "".join(_SPECIAL.get(ch, ch) for ch in value)


def equality(attr: str, value: str) -> str:
    """``(attr=value)`` with ``value`` escaped."""
    return f"({attr}={escape(value)})"


def conjunction(*parts: str) -> str:
    """``(&...)`` of the non-empty parts (a single part is returned as is)."""
    present = [p for p in parts if p]
    if len(present) == 1:
        return present[0]
    return "(&" + "".join(present) + ")"


def disjunction(*parts: str) -> str:
    present = [p for p in parts if p]
    if len(present) == 1:
        return present[0]
    return "(|" + "".join(present) + ")"
