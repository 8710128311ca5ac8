"""Reading and writing a file's POSIX ACLs (``system.posix_acl_access``/``_default``).

Both directions act as the caller (:func:`~securenfs.vfs.creds.as_caller`), so the kernel
decides: anyone who can reach a file may read its ACL, only its owner (or a caller with
CAP_FOWNER, i.e. an unsquashed root) may change it.  Setting an access ACL also sets the
permission bits of the mode (the kernel derives them from the ACL); an ACL the mode bits
say completely (three entries) is stored as the mode alone.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from dataclasses import dataclass

from securenfs.acl.posix import ACCESS_XATTR, DEFAULT_XATTR, PosixAcl, PosixAclError, decode, encode
from securenfs.vfs.creds import FsCreds, as_caller
from securenfs.vfs.errors import FsError
from securenfs.vfs.local import LocalFs

_NO_ACL = (errno.ENODATA, errno.EOPNOTSUPP)


@dataclass(slots=True, frozen=True)
class StoredAcl:
    """A file's attributes and its POSIX ACLs as stored (None: no such xattr)."""

    st: os.stat_result
    access: PosixAcl | None
    default: PosixAcl | None

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.st.st_mode)

    def effective(self) -> PosixAcl:
        """The access ACL, or the one the mode bits stand for when there is none."""
        return self.access if self.access is not None else PosixAcl.from_mode(self.st.st_mode)


def _proc(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _get(path: str, name: str) -> PosixAcl | None:
    try:
        data = os.getxattr(path, name)
    except OSError as exc:
        if exc.errno in _NO_ACL:
            return None
        raise FsError.from_oserror(exc, name) from None
    try:
        return decode(data)
    except PosixAclError as exc:
        raise FsError(errno.EIO, f"{name} holds no valid POSIX ACL: {exc}") from None


def supports_posix_acls(path: str | os.PathLike[str]) -> bool:
    """Whether the file system at ``path`` stores POSIX ACLs (mounted with ``acl``)."""
    try:
        os.getxattr(path, ACCESS_XATTR)
    except OSError as exc:
        return exc.errno == errno.ENODATA
    return True


def has_default_acl(dir_fd: int) -> bool:
    """Whether the directory (an ``O_PATH`` descriptor) has a default ACL: new objects in it
    then take their permissions from it and the create mode, not from the umask."""
    try:
        os.getxattr(_proc(dir_fd), DEFAULT_XATTR)
    except OSError:
        return False
    return True


def read(fs: LocalFs, fh: bytes, creds: FsCreds) -> StoredAcl:
    """The file's attributes and ACLs, read as the caller."""
    with fs.resolved(fh) as (fd, st):
        if stat_mod.S_ISLNK(st.st_mode):
            return StoredAcl(st, None, None)  # symbolic links carry no ACL on Linux
        path = _proc(fd)
        with as_caller(creds):
            access = _get(path, ACCESS_XATTR)
            default = _get(path, DEFAULT_XATTR) if stat_mod.S_ISDIR(st.st_mode) else None
        return StoredAcl(st, access, default)


def write(fs: LocalFs, fh: bytes, creds: FsCreds, access: PosixAcl, default: PosixAcl | None) -> None:
    """Replace the file's access ACL and, for a directory, its default ACL (None removes
    it), as the caller."""
    with fs.resolved(fh) as (fd, st):
        if stat_mod.S_ISLNK(st.st_mode):
            raise FsError(errno.EINVAL, "a symbolic link has no ACL")
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        path = _proc(fd)
        with as_caller(creds):
            try:
                os.setxattr(path, ACCESS_XATTR, encode(access))
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP or not access.minimal or default is not None:
                    raise _error(exc, ACCESS_XATTR) from None
                # A file system without POSIX ACLs still holds an ACL the mode bits say.
                try:
                    os.chmod(path, (st.st_mode & 0o7000) | access.mode_bits())
                except OSError as exc2:
                    raise FsError.from_oserror(exc2, "chmod") from None
            if not is_dir:
                return
            try:
                if default is None:
                    os.removexattr(path, DEFAULT_XATTR)
                else:
                    os.setxattr(path, DEFAULT_XATTR, encode(default))
            except OSError as exc:
                if default is not None or exc.errno not in _NO_ACL:
                    raise _error(exc, DEFAULT_XATTR) from None


def _error(exc: OSError, name: str) -> FsError:
    if exc.errno == errno.EOPNOTSUPP:
        return FsError(errno.EOPNOTSUPP, f"the exported file system does not store POSIX ACLs ({name}); "
                       "mount it with the acl option")
    return FsError.from_oserror(exc, name)
