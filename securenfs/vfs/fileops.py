"""Blocking file-system steps of the state and namespace-changing operations.

They run in the server's pool.  Each resolves the verified handle to an ``O_PATH``
descriptor with the server's privileges (as :class:`~securenfs.vfs.local.LocalFs` does for
every operation) and then acts *as the caller* relative to that descriptor, so the kernel
checks permissions on the directory or file exactly as for a local process of that user.
Names are single components checked by the protocol layer.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import time
from dataclasses import dataclass

from securenfs.vfs.acls import has_default_acl
from securenfs.vfs.creds import FsCreds, as_caller
from securenfs.vfs.errors import FsError
from securenfs.vfs.local import LocalFs, proc_path
from securenfs.vfs.protocol import FileSystem


def _dir(st: os.stat_result) -> None:
    if stat_mod.S_ISLNK(st.st_mode):
        raise FsError(errno.ELOOP, "a symbolic link is not a directory")
    if not stat_mod.S_ISDIR(st.st_mode):
        raise FsError(errno.ENOTDIR, "not a directory")


@dataclass(slots=True)
class Opened:
    fh: bytes
    #: A descriptor opened as the caller with the OPEN's access mode: the one that created
    #: the file, or one of the existing regular file (None: not a regular file, or replaced).
    fd: int | None
    created: bool
    before: int  # directory change attribute before / after
    after: int
    st: os.stat_result


def open_name(fs: LocalFs, dir_fh: bytes, name: str, creds: FsCreds, *, create: bool, exclusive: bool,
              accflags: int, mode: int, verifier_ns: int | None) -> Opened:
    """OPEN by name: find or create ``name`` in the directory.  With ``exclusive`` the file
    must not exist, unless ``verifier_ns`` is given and matches the file's atime and mtime
    (a retried exclusive create, RFC 8881 §18.16.3); the new file then carries the verifier
    in its times."""
    with fs.resolved(dir_fh) as (dfd, dst):
        _dir(dst)
        before = dst.st_ctime_ns
        created = False
        fd: int | None = None
        with as_caller(creds):
            if create:
                # Always O_EXCL, so "created" is known; UNCHECKED4 then uses the existing file.
                flags = accflags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
                try:
                    fd = os.open(name, flags, mode & 0o7777, dir_fd=dfd)
                    created = True
                except FileExistsError:
                    fd = None
                    if exclusive and verifier_ns is None:
                        raise FsError(errno.EEXIST, name) from None
                except OSError as exc:
                    raise FsError.from_oserror(exc, name) from None
            if created and fd is not None:
                try:
                    st = os.fstat(fd)
                    if st.st_mode & 0o7777 != mode & 0o7777 and not has_default_acl(dfd):
                        # The client's mode, not the umask's.  Under a default ACL the kernel
                        # already combined the two (RFC 8881 §6.4.3): a chmod would widen it.
                        os.fchmod(fd, mode & 0o7777)
                    if verifier_ns is not None:
                        os.utime(fd, ns=(verifier_ns, verifier_ns))
                except OSError as exc:
                    os.close(fd)
                    raise FsError.from_oserror(exc, name) from None
            try:
                fh, st = fs.child(dfd, name)
            except BaseException:
                if fd is not None:
                    os.close(fd)
                raise
            if create and not created and verifier_ns is not None and not created_by_exclusive_retry(st, verifier_ns):
                raise FsError(errno.EEXIST, f"{name} exists (exclusive create with another verifier)")
            if fd is None and stat_mod.S_ISREG(st.st_mode):
                # Open the existing file here, as the caller, in the same pool call: this is
                # OPEN's permission check, and the descriptor serves the open's I/O.
                fd = _open_existing(dfd, name, accflags, st)
        after = os.fstat(dfd).st_ctime_ns
        return Opened(fh, fd, created, before, after, st)


def _open_existing(dfd: int, name: str, accflags: int, st: os.stat_result) -> int | None:
    """``name`` opened with ``accflags`` as the calling thread's identity, or None when the
    name now refers to another file (replaced since it was looked up: the caller falls back
    to opening by handle).  Never blocks (a FIFO swapped in is opened non-blocking)."""
    flags = accflags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    try:
        fd = os.open(name, flags, dir_fd=dfd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.EISDIR):
            return None
        raise FsError.from_oserror(exc, name) from None
    try:
        now = os.fstat(fd)
    except OSError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        return None
    return fd


def created_by_exclusive_retry(st: os.stat_result, verifier_ns: int | None) -> bool:
    return verifier_ns is not None and st.st_atime_ns == verifier_ns and st.st_mtime_ns == verifier_ns


def verifier_to_ns(verifier: bytes) -> int:
    """Where the exclusive-create verifier is kept: in atime and mtime (two 31-bit halves as
    seconds and nanoseconds, so the kernel stores them exactly)."""
    hi = int.from_bytes(verifier[:4], "big") & 0x7FFFFFFF
    lo = int.from_bytes(verifier[4:], "big") % 1_000_000_000
    return hi * 1_000_000_000 + lo


def open_fh(fs: FileSystem, fh: bytes, accflags: int, creds: FsCreds) -> int:
    return fs.open(fh, accflags, creds)


def truncate(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        raise FsError.from_oserror(exc, "truncate") from None


def pread(fd: int, count: int, offset: int) -> tuple[bytes, bool]:
    try:
        data = os.pread(fd, count, offset)
        size = os.fstat(fd).st_size
    except OSError as exc:
        raise FsError.from_oserror(exc, "read") from None
    return data, offset + len(data) >= size


def pwrite(fd: int, data: bytes | memoryview, offset: int, stable: int) -> int:
    try:
        n = os.pwrite(fd, data, offset)
        if stable == 2:
            os.fsync(fd)
        elif stable == 1:
            os.fdatasync(fd)
    except OSError as exc:
        raise FsError.from_oserror(exc, "write") from None
    return n


def fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise FsError.from_oserror(exc, "commit") from None


# -- namespace changes ---------------------------------------------------------------------------

def create_obj(fs: LocalFs, dir_fh: bytes, name: str, creds: FsCreds, kind: str, mode: int, link: bytes = b"",
               rdev: int = 0) -> tuple[bytes, int, int]:
    """CREATE: mkdir, symlink or mknod as the caller; (new handle, change before, after)."""
    with fs.resolved(dir_fh) as (dfd, dst):
        _dir(dst)
        before = dst.st_ctime_ns
        with as_caller(creds):
            try:
                if kind == "dir":
                    os.mkdir(name, mode & 0o7777, dir_fd=dfd)
                elif kind == "link":
                    os.symlink(link, name.encode(), dir_fd=dfd)
                else:
                    os.mknod(name, mode, rdev, dir_fd=dfd)
            except OSError as exc:
                raise FsError.from_oserror(exc, name) from None
            fh, st = fs.child(dfd, name)
            if kind != "link" and st.st_mode & 0o7777 != mode & 0o7777 and not has_default_acl(dfd):
                try:
                    os.chmod(name, mode & 0o7777, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    pass
        return fh, before, os.fstat(dfd).st_ctime_ns


def remove(fs: LocalFs, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]:
    with fs.resolved(dir_fh) as (dfd, dst):
        _dir(dst)
        before = dst.st_ctime_ns
        with as_caller(creds):
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat_mod.S_ISDIR(st.st_mode):
                    os.rmdir(name, dir_fd=dfd)
                else:
                    os.unlink(name, dir_fd=dfd)
            except OSError as exc:
                raise FsError.from_oserror(exc, name) from None
        return before, os.fstat(dfd).st_ctime_ns


def rename(fs: LocalFs, src_dir: bytes, old: str, dst_dir: bytes, new: str,
           creds: FsCreds) -> tuple[int, int, int, int]:
    with fs.resolved(src_dir) as (sfd, sst), fs.resolved(dst_dir) as (tfd, tst):
        _dir(sst)
        _dir(tst)
        sb, tb = sst.st_ctime_ns, tst.st_ctime_ns
        with as_caller(creds):
            try:
                os.rename(old, new, src_dir_fd=sfd, dst_dir_fd=tfd)
            except OSError as exc:
                raise FsError.from_oserror(exc, f"{old} -> {new}") from None
        return sb, os.fstat(sfd).st_ctime_ns, tb, os.fstat(tfd).st_ctime_ns


def link(fs: LocalFs, src_fh: bytes, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]:
    with fs.resolved(src_fh) as (sfd, sst), fs.resolved(dir_fh) as (dfd, dst):
        if stat_mod.S_ISDIR(sst.st_mode):
            raise FsError(errno.EISDIR, "LINK of a directory")
        _dir(dst)
        before = dst.st_ctime_ns
        with as_caller(creds):
            try:
                # linkat(AT_SYMLINK_FOLLOW) of the /proc link of an O_PATH descriptor.
                os.link(proc_path(sfd), name, dst_dir_fd=dfd, follow_symlinks=True)
            except OSError as exc:
                raise FsError.from_oserror(exc, name) from None
        return before, os.fstat(dfd).st_ctime_ns


def setattr_path(fs: LocalFs, fh: bytes, creds: FsCreds, mode: int | None, uid: int | None, gid: int | None,
                 atime: tuple[int | None] | None, mtime: tuple[int | None] | None) -> None:
    """SETATTR of everything but the size, as the caller.  ``atime``/``mtime`` are None
    (unchanged) or a 1-tuple holding nanoseconds or None (the server's time)."""
    with fs.resolved(fh) as (fd, st):
        path = proc_path(fd)
        islnk = stat_mod.S_ISLNK(st.st_mode)
        with as_caller(creds):
            try:
                if uid is not None or gid is not None:
                    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=not islnk)
                # Linux has no mode on a symbolic link (lchmod fails): the mode of a link is
                # accepted and left as it is, as the kernel's NFS server does, so a client's
                # recursive chmod of a tree holding links does not stop at the first link.
                if mode is not None and not islnk:
                    os.chmod(path, mode & 0o7777)
                if atime is not None or mtime is not None:
                    if islnk:
                        raise FsError(errno.EINVAL, "times of a symbolic link cannot be set here")
                    if (atime is None or atime[0] is None) and (mtime is None or mtime[0] is None):
                        os.utime(path)  # both to the server's time (no ownership needed)
                    else:
                        now = time.time_ns()
                        cur = os.stat(path)
                        a = cur.st_atime_ns if atime is None else (now if atime[0] is None else atime[0])
                        m = cur.st_mtime_ns if mtime is None else (now if mtime[0] is None else mtime[0])
                        os.utime(path, ns=(a, m))
            except OSError as exc:
                raise FsError.from_oserror(exc, "setattr") from None
