"""The one check of a single path component received from a client (RFC 8881 §14.2,
§18.13.3): LOOKUP, OPEN, CREATE, REMOVE, RENAME (both names), LINK and SECINFO all use it,
and so does the file-system layer for the names it is handed.

* empty, or not valid UTF-8: :class:`BadName` with ``invalid`` set (NFS4ERR_INVAL);
* ".", "..", or holding "/" or NUL -- it can never name a directory entry: :class:`BadName`
  (NFS4ERR_BADNAME).  LOOKUPP is the only way up;
* longer than ``NAME_MAX`` bytes: ENAMETOOLONG (NFS4ERR_NAMETOOLONG).
"""

from __future__ import annotations

import errno

from securenfs.vfs.errors import BadName, FsError

#: NAME_MAX on Linux file systems.
NAME_MAX = 255


def check_name(raw: bytes) -> str:
    """The component ``raw`` (as sent on the wire) as text, or :class:`BadName` / ENAMETOOLONG."""
    if not raw:
        raise BadName("a name may not be empty", empty=True)
    if len(raw) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG, f"a name of {len(raw)} bytes exceeds {NAME_MAX}")
    if raw in (b".", b".."):
        raise BadName(f"the name {raw.decode()!r} is not allowed")
    if b"/" in raw or b"\0" in raw:
        raise BadName(f"the name {raw[:40]!r} contains '/' or NUL")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadName(f"the name {raw[:40]!r} is not valid UTF-8", not_utf8=True) from None
