"""Validation of single path components received from clients (RFC 8881 §1.7.3.4, §18.13)."""

from __future__ import annotations

import errno
import os

from securenfs.vfs.errors import BadName, FsError

#: NAME_MAX on Linux file systems.
NAME_MAX = 255


def check_name(name: str) -> bytes:
    """The on-disk bytes of a component name, or :class:`BadName` / ENAMETOOLONG.

    "." and ".." are refused: LOOKUPP is the only way up, and it never leaves the export
    except to the pseudo node above it.  "/" would make a path and NUL ends C strings.
    """
    if not name:
        raise BadName("a name may not be empty", empty=True)
    if name in (".", ".."):
        raise BadName(f"the name {name!r} is not allowed")
    if "/" in name or "\0" in name:
        raise BadName(f"the name {name!r} contains '/' or NUL")
    raw = os.fsencode(name)
    if len(raw) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"a name of {len(raw)} bytes exceeds {NAME_MAX}")
    return raw
