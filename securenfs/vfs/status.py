"""The one mapping of file-system failures to NFS4ERR statuses (RFC 8881 §15.1)."""

from __future__ import annotations

from securenfs.proto.constants import Stat
from securenfs.proto.errors import status_from_errno
from securenfs.vfs.errors import BadCookie, BadName, CookieVerifierMismatch, FsError
from securenfs.vfs.handles import BadHandle


def nfs_status(exc: FsError) -> int:
    """NFS4ERR_BADHANDLE, BADNAME/INVAL, BAD_COOKIE and NOT_SAME for the failures that carry
    that meaning; any other by its errno."""
    if isinstance(exc, BadHandle):
        return Stat.BADHANDLE
    if isinstance(exc, BadName):
        return Stat.INVAL if exc.invalid else Stat.BADNAME
    if isinstance(exc, BadCookie):
        return Stat.BAD_COOKIE
    if isinstance(exc, CookieVerifierMismatch):
        return Stat.NOT_SAME
    return status_from_errno(exc.errno)
