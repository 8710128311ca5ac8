"""Component names from the wire: UTF-8, 1..255 bytes, no '/' or NUL, not '.' or '..'.

RFC 8881 §18.13.3 (LOOKUP) and §14: a zero-length name is NFS4ERR_INVAL; a name that can
never name an entry ('.', '..', or one holding '/' or NUL) is NFS4ERR_BADNAME; invalid UTF-8
is NFS4ERR_INVAL (§14.4); longer than maxname is NFS4ERR_NAMETOOLONG.
"""

from __future__ import annotations

from securenfs.nfs4.constants import NFS4_MAXNAME, Stat
from securenfs.nfs4.errors import Nfs4Error


def check_name(raw: bytes) -> str:
    if not raw:
        raise Nfs4Error(Stat.INVAL, "empty name")
    if len(raw) > NFS4_MAXNAME:
        raise Nfs4Error(Stat.NAMETOOLONG, f"name of {len(raw)} bytes")
    if b"/" in raw or b"\0" in raw or raw in (b".", b".."):
        raise Nfs4Error(Stat.BADNAME, f"name {raw[:40]!r} cannot name a directory entry")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Nfs4Error(Stat.INVAL, "name is not valid UTF-8") from None
