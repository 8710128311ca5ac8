"""Nfs4Error: an operation's failure status with a line for the log, and errno mapping."""

from __future__ import annotations

import errno

from securenfs.proto.constants import Stat, stat_text


class Nfs4Error(Exception):
    """Raised by handlers and checks; the COMPOUND loop turns it into the op's status."""

    def __init__(self, status: int, detail: str = "", *, result: object | None = None):
        super().__init__(f"{stat_text(status)}{': ' + detail if detail else ''}")
        self.status = status
        self.detail = detail
        #: The operation's result body when the error carries one (LOCK4denied with
        #: NFS4ERR_DENIED, RFC 8881 §18.10.2); None for a bare status.
        self.result = result


_ERRNO: dict[int, int] = {
    errno.EPERM: Stat.PERM,
    errno.ENOENT: Stat.NOENT,
    errno.EIO: Stat.IO,
    errno.ENXIO: Stat.NXIO,
    errno.EACCES: Stat.ACCESS,
    errno.EEXIST: Stat.EXIST,
    errno.EXDEV: Stat.XDEV,
    errno.ENOTDIR: Stat.NOTDIR,
    errno.EISDIR: Stat.ISDIR,
    errno.EINVAL: Stat.INVAL,
    errno.EFBIG: Stat.FBIG,
    errno.ENOSPC: Stat.NOSPC,
    errno.EROFS: Stat.ROFS,
    errno.EMLINK: Stat.MLINK,
    errno.ENAMETOOLONG: Stat.NAMETOOLONG,
    errno.ENOTEMPTY: Stat.NOTEMPTY,
    errno.EDQUOT: Stat.DQUOT,
    errno.ESTALE: Stat.STALE,
    errno.ELOOP: Stat.SYMLINK,
    errno.EBADF: Stat.STALE,
    errno.EOPNOTSUPP: Stat.NOTSUPP,
    errno.EAGAIN: Stat.DELAY,
}


def status_from_errno(err: int | None) -> int:
    return _ERRNO.get(err or errno.EIO, Stat.IO)
