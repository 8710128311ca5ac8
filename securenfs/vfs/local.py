"""One exported local directory tree, reached through persistent file handles.

Every method blocks and is meant for the server's worker threads; all are thread-safe.
Every step done for a client runs inside :func:`~securenfs.vfs.creds.as_caller`, so the
kernel checks permissions.  The only step done with the server's own privileges is turning
a verified handle into an ``O_PATH`` descriptor (``open_by_handle_at`` needs
CAP_DAC_READ_SEARCH); an ``O_PATH`` descriptor grants no access to data by itself.

Containment: handles are bound to their export by the MAC; names are single components
("." and ".." refused); symlinks are never followed by the server (LOOKUP returns the link
itself); a lookup that lands on another mount (a mount point below the export) is refused;
LOOKUPP stops at the export root (``None``: the protocol layer moves to the pseudo node) and
refuses to climb out of a directory that has been moved outside the export.

Errors are :class:`~securenfs.vfs.errors.FsError` (``.errno``);
:class:`~securenfs.vfs.handles.BadHandle` for handles that do not verify or belong to
another export; ESTALE for a verified handle of a file that no longer exists.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

from securenfs.proto.constants import Access4
from securenfs.vfs import kernel
from securenfs.vfs.creds import FsCreds, as_caller, as_server
from securenfs.vfs.dirlist import ListingCache, build_listing
from securenfs.vfs.errors import BadCookie, CookieVerifierMismatch, FsError
from securenfs.vfs.handles import BadHandle, FileKey, HandleCodec
from securenfs.vfs.names import check_name

_O_PATH = os.O_PATH | os.O_CLOEXEC
#: How a single name component is resolved everywhere in this package: an ``O_PATH``
#: descriptor that never follows a symbolic link (the link itself is the object).
O_PATH_NOFOLLOW = _O_PATH | os.O_NOFOLLOW
#: Deepest directory nesting LOOKUPP's containment walk follows before giving up.
_MAX_DEPTH = 4096


@dataclass(slots=True, frozen=True)
class DirEntry:
    """One READDIR entry.  ``error`` is set (and ``fh``/``stat`` are None) when the entry's
    attributes cannot be read: it becomes the entry's rdattr_error (RFC 8881 §5.8.1.12)."""

    cookie: int
    name: str
    fh: bytes | None
    stat: os.stat_result | None
    error: int | None = None


def proc_path(fd: int) -> str:
    # Reopening an O_PATH descriptor through its /proc magic link runs the ordinary open
    # permission check against the calling thread's fsuid/fsgid/groups.
    return f"/proc/self/fd/{fd}"


class ExportRoot(Protocol):
    """What the file-system layer needs of an export: its directory, handle id and names for
    messages, and whether device files may be opened."""

    @property
    def export_id(self) -> int: ...
    @property
    def path(self) -> Path: ...
    @property
    def pseudo(self) -> str: ...
    @property
    def allow_devices(self) -> bool: ...
    def describe(self) -> str: ...


def export_file_key(codec: HandleCodec, export: ExportRoot, fh: bytes) -> FileKey:
    """The verified key of a handle of a file of ``export``; BadHandle for a pseudo file
    system handle or one of another export."""
    key = codec.parse(fh)
    if not isinstance(key, FileKey):
        raise BadHandle("a pseudo file system handle is not a file of an export")
    if key.export_id != export.export_id:
        raise BadHandle(f"the handle belongs to another export (id {key.export_id}), not {export.pseudo}")
    return key


class LocalFs:
    def __init__(self, export: ExportRoot, codec: HandleCodec, *, listing_cache_size: int = 64):
        self.export = export
        self.codec = codec
        self._listings = ListingCache(listing_cache_size)
        with as_server():
            try:
                # A real descriptor, not O_PATH: open_by_handle_at refuses O_PATH mount_fds
                # (EBADF) on the kernels we support.
                fd = os.open(export.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise FsError.from_oserror(exc, f"{export.describe()}: cannot open {export.path}") from None
        self._root_fd = fd
        st = os.fstat(fd)
        self._root_dev, self._root_ino = st.st_dev, st.st_ino
        try:
            kh = kernel.name_to_handle_at(fd, "", kernel.AT_EMPTY_PATH)
        except FsError as exc:
            os.close(fd)
            raise FsError(exc.errno or errno.EOPNOTSUPP,
                          f"{export.describe()}: the file system of {export.path} does not provide "
                          f"persistent file handles ({exc.strerror}); it cannot be exported") from None
        self._mount_id = kh.mount_id
        self._root_fh = codec.file(export.export_id, kh.handle_type, kh.data)

    def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- handles ------------------------------------------------------------------------------

    def root_fh(self) -> bytes:
        return self._root_fh

    def is_root(self, fh: bytes) -> bool:
        return fh == self._root_fh

    def _key(self, fh: bytes) -> FileKey:
        return export_file_key(self.codec, self.export, fh)

    def _open_path(self, fh: bytes) -> tuple[int, os.stat_result]:
        key = self._key(fh)
        with as_server():
            try:
                fd = kernel.open_by_handle_at(self._root_fd, key.handle_type, key.kernel_handle, _O_PATH)
            except FsError as exc:
                if exc.errno in (errno.ENOMEM, errno.EMFILE, errno.ENFILE):
                    raise
                # ESTALE for removed inodes; anything else a verified handle gets from the
                # kernel also means the file it named is gone (e.g. the file system was
                # recreated).
                raise FsError(errno.ESTALE, "the file no longer exists") from None
        try:
            st = os.fstat(fd)
            if st.st_nlink == 0:
                raise FsError(errno.ESTALE, "the file has been removed")
            if st.st_dev != self._root_dev:
                raise FsError(errno.ESTALE, "the handle names a file outside the export's file system")
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    @contextmanager
    def resolved(self, fh: bytes) -> Iterator[tuple[int, os.stat_result]]:
        """``with fs.resolved(fh) as (fd, st):`` an ``O_PATH`` descriptor of the file a
        verified handle names, and its attributes, for the body only (closed after).

        Opened with the server's privileges: the descriptor grants no access to data by
        itself; callers act on it (``dir_fd=fd``, ``/proc/self/fd/<fd>``) inside
        :func:`~securenfs.vfs.creds.as_caller`, so the kernel checks the caller's
        permissions.  Raises BadHandle for a handle of another export, FsError(ESTALE)
        for a removed file."""
        fd, st = self._open_path(fh)
        try:
            yield fd, st
        finally:
            os.close(fd)

    def _handle_of_fd(self, fd: int) -> bytes:
        kh = kernel.name_to_handle_at(fd, "", kernel.AT_EMPTY_PATH)
        if kh.mount_id != self._mount_id:
            raise FsError(errno.EACCES, "a mount point of another file system; export it separately")
        return self.codec.file(self.export.export_id, kh.handle_type, kh.data)

    def child(self, dfd: int, name: str) -> tuple[bytes, os.stat_result]:
        """Handle and attributes of ``name`` in the directory descriptor ``dfd`` (from
        :meth:`resolved`), looked up with the calling thread's identity (call it inside
        :func:`~securenfs.vfs.creds.as_caller`): never follows a symlink, never crosses a
        mount (EACCES).  ``name`` must be a single checked component."""
        try:
            cfd = os.open(name, O_PATH_NOFOLLOW, dir_fd=dfd)
        except OSError as exc:
            raise FsError.from_oserror(exc, name) from None
        try:
            st = os.fstat(cfd)
            if st.st_dev != self._root_dev:
                raise FsError(errno.EACCES, f"{name}: a mount point of another file system; export it separately")
            return self._handle_of_fd(cfd), st
        finally:
            os.close(cfd)

    def fh_for_path(self, path: str | os.PathLike[str]) -> bytes:
        """The handle of a path inside the export (absolute, or relative to the export root),
        resolved with the server's privileges; the last component is not followed."""
        p = Path(path)
        if not p.is_absolute():
            p = self.export.path / p
        with as_server():
            try:
                if p.name in ("", ".", ".."):
                    pfd, fd = -1, os.open(p, _O_PATH | os.O_DIRECTORY)
                else:
                    pfd = os.open(p.parent, _O_PATH | os.O_DIRECTORY)
                    fd = os.open(p.name, O_PATH_NOFOLLOW, dir_fd=pfd)
            except OSError as exc:
                raise FsError.from_oserror(exc, str(p)) from None
            try:
                st = os.fstat(fd)
                # A non-directory cannot be walked upwards: check the directory holding it.
                where = fd if stat_mod.S_ISDIR(st.st_mode) or pfd < 0 else pfd
                if not self._inside(where) or st.st_dev != self._root_dev:
                    raise FsError(errno.EACCES, f"{p} is outside {self.export.describe()}")
                return self._handle_of_fd(fd)
            finally:
                os.close(fd)
                if pfd >= 0:
                    os.close(pfd)

    def _inside(self, fd: int) -> bool:
        """Whether ``fd`` lies at or below the export root (walks '..' upwards).  A
        non-directory has no '..'; callers check the directory it was found in."""
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (self._root_dev, self._root_ino):
            return True
        if not stat_mod.S_ISDIR(st.st_mode):
            return True
        cur = os.open("..", _O_PATH | os.O_DIRECTORY, dir_fd=fd)
        try:
            for _ in range(_MAX_DEPTH):
                cst = os.fstat(cur)
                if (cst.st_dev, cst.st_ino) == (self._root_dev, self._root_ino):
                    return True
                up = os.open("..", _O_PATH | os.O_DIRECTORY, dir_fd=cur)
                ust = os.fstat(up)
                if (ust.st_dev, ust.st_ino) == (cst.st_dev, cst.st_ino):
                    os.close(up)
                    return False  # reached the top of the file system
                os.close(cur)
                cur = up
            return False
        finally:
            os.close(cur)

    # -- attributes ---------------------------------------------------------------------------

    def stat(self, fh: bytes) -> os.stat_result:
        with self.resolved(fh) as (_, st):
            return st

    def statvfs(self, fh: bytes) -> os.statvfs_result:
        with self.resolved(fh) as (fd, _):
            return os.fstatvfs(fd)

    # -- namespace ----------------------------------------------------------------------------

    def lookup(self, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[bytes, os.stat_result]:
        check_name(os.fsencode(name))
        with self.resolved(dir_fh) as (dfd, dst):
            if stat_mod.S_ISLNK(dst.st_mode):
                raise FsError(errno.ELOOP, "LOOKUP in a symbolic link")  # NFS4ERR_SYMLINK (RFC 8881 §18.15.3)
            if not stat_mod.S_ISDIR(dst.st_mode):
                raise FsError(errno.ENOTDIR, "LOOKUP in a non-directory")
            with as_caller(creds):
                return self.child(dfd, name)

    def lookupp(self, fh: bytes, creds: FsCreds) -> bytes | None:
        with self.resolved(fh) as (fd, st):
            if stat_mod.S_ISLNK(st.st_mode):
                raise FsError(errno.ELOOP, "LOOKUPP of a symbolic link")  # NFS4ERR_SYMLINK (RFC 8881 §18.14.3)
            if not stat_mod.S_ISDIR(st.st_mode):
                raise FsError(errno.ENOTDIR, "LOOKUPP of a non-directory")
            if (st.st_dev, st.st_ino) == (self._root_dev, self._root_ino):
                return None
            with as_caller(creds):
                try:
                    pfd = os.open("..", _O_PATH | os.O_DIRECTORY, dir_fd=fd)
                except OSError as exc:
                    raise FsError.from_oserror(exc, "..") from None
            try:
                with as_server():
                    inside = self._inside(pfd)
                if not inside:
                    raise FsError(errno.EACCES, "the directory has been moved outside the export")
                return self._handle_of_fd(pfd)
            finally:
                os.close(pfd)

    def readlink(self, fh: bytes, creds: FsCreds) -> bytes:
        with self.resolved(fh) as (fd, st):
            if not stat_mod.S_ISLNK(st.st_mode):
                raise FsError(errno.EINVAL, "READLINK of something that is not a symbolic link")
            with as_caller(creds):
                try:
                    return os.readlink(b"", dir_fd=fd)
                except OSError as exc:
                    raise FsError.from_oserror(exc, "readlink") from None

    def access(self, fh: bytes, creds: FsCreds, mask: int, *, read_only: bool = False) -> int:
        """The subset of ``mask`` (ACCESS4_* bits) the kernel grants ``creds``.  Bits that do
        not apply to the object's type (LOOKUP/DELETE on files, EXECUTE on directories) are
        never granted; on a read-only export MODIFY/EXTEND/DELETE never are."""
        with self.resolved(fh) as (fd, st):
            is_dir = stat_mod.S_ISDIR(st.st_mode)
            if stat_mod.S_ISLNK(st.st_mode):
                # Link permissions are not checked by Linux; only reading the link applies.
                return int(mask & Access4.READ)
            wanted: dict[int, int] = {Access4.READ: os.R_OK}
            if is_dir:
                wanted |= {Access4.LOOKUP: os.X_OK, Access4.MODIFY: os.W_OK, Access4.EXTEND: os.W_OK,
                           Access4.DELETE: os.W_OK | os.X_OK}
            else:
                wanted |= {Access4.MODIFY: os.W_OK, Access4.EXTEND: os.W_OK, Access4.EXECUTE: os.X_OK}
            if read_only:
                for b in (Access4.MODIFY, Access4.EXTEND, Access4.DELETE):
                    wanted.pop(b, None)
            granted = 0
            results: dict[int, bool] = {}
            path = proc_path(fd)
            with as_caller(creds):
                for bit, mode in wanted.items():
                    if not mask & bit:
                        continue
                    if mode not in results:
                        # faccessat(AT_EACCESS) checks with the thread's fsuid/fsgid/groups.
                        results[mode] = os.access(path, mode, effective_ids=True)
                    if results[mode]:
                        granted |= bit
            return granted

    def open(self, fh: bytes, flags: int, creds: FsCreds) -> int:
        """A descriptor for the file, opened as the caller (the kernel checks permission)."""
        if flags & (os.O_CREAT | os.O_PATH):
            raise FsError(errno.EINVAL, "open() of a handle cannot create files")
        with self.resolved(fh) as (fd, st):
            mode = st.st_mode
            if stat_mod.S_ISLNK(mode):
                raise FsError(errno.ELOOP, "cannot open a symbolic link")
            if not (stat_mod.S_ISREG(mode) or stat_mod.S_ISDIR(mode)):
                if not self.export.allow_devices:
                    raise FsError(errno.EACCES, f"{self.export.describe()} does not allow opening "
                                  "devices, sockets or FIFOs (allow_devices = false)")
                flags |= os.O_NONBLOCK  # a FIFO without a writer must not block a worker
            with as_caller(creds):
                try:
                    return os.open(proc_path(fd), flags | os.O_CLOEXEC | os.O_NOCTTY)
                except OSError as exc:
                    raise FsError.from_oserror(exc, "open") from None

    def open_for_locks(self, fh: bytes, writable: bool) -> int:
        """A descriptor of a regular file that carries the kernel's byte-range locks for one
        NFS lock-owner (securenfs.locking.ofd), opened with the server's privileges: it is
        never read or written through, and the client's OPEN already passed the permission
        check.  Writable when asked: the kernel takes a write lock only on a descriptor open
        for writing."""
        with self.resolved(fh) as (fd, st):
            mode = st.st_mode
            if not stat_mod.S_ISREG(mode):
                # RFC 8881 §15.2 lists NFS4ERR_ISDIR and NFS4ERR_SYMLINK for LOCK and LOCKT.
                err = errno.EISDIR if stat_mod.S_ISDIR(mode) else errno.ELOOP if stat_mod.S_ISLNK(mode) else errno.EINVAL
                raise FsError(err, "byte-range locks are only for regular files")
            with as_server():
                try:
                    return os.open(proc_path(fd), (os.O_RDWR if writable else os.O_RDONLY)
                                   | os.O_CLOEXEC | os.O_NOCTTY)
                except OSError as exc:
                    raise FsError.from_oserror(exc, "open for locks") from None

    # -- directories --------------------------------------------------------------------------

    def readdir(self, dir_fh: bytes, cookie: int, creds: FsCreds, max_entries: int, *,
                verifier: int | None = None, with_attrs: bool = True,
                ) -> tuple[list[DirEntry], bool, int]:
        """Up to ``max_entries`` entries after ``cookie`` (0: from the start), whether the
        listing is complete, and the cookie verifier.  Pass the client's ``verifier`` with a
        non-zero cookie to have it checked (CookieVerifierMismatch = NFS4ERR_NOT_SAME).  See
        :mod:`securenfs.vfs.dirlist` for the cookie scheme.  Entries removed since the
        listing was read are skipped; "." and ".." never appear."""
        if cookie in (1, 2):
            raise BadCookie(f"cookie {cookie} is reserved and never handed out")
        if max_entries < 1:
            raise FsError(errno.EINVAL, "max_entries must be at least 1")
        with self.resolved(dir_fh) as (pfd, st):
            if not stat_mod.S_ISDIR(st.st_mode):
                raise FsError(errno.ENOTDIR, "READDIR of a non-directory")
            with as_caller(creds):
                try:
                    # The read permission check of a directory listing, as the caller.
                    dfd = os.open(proc_path(pfd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError as exc:
                    raise FsError.from_oserror(exc, "readdir") from None
                try:
                    dst = os.fstat(dfd)
                    listing = self._listings.get(dst) if cookie != 0 else None
                    if listing is None:
                        listing = build_listing(os.listdir(dfd), dst)
                        self._listings.put(dst, listing)
                    if cookie != 0 and verifier is not None and verifier != listing.verifier:
                        raise CookieVerifierMismatch(
                            "the directory changed in a way that invalidates cookies; restart at 0")
                    out: list[DirEntry] = []
                    i = listing.start(cookie)
                    n = len(listing.names)
                    while i < n and len(out) < max_entries:
                        name, c = listing.names[i], listing.cookies[i]
                        i += 1
                        if not with_attrs:
                            out.append(DirEntry(c, name, None, None))
                            continue
                        try:
                            efh, est = self.child(dfd, name)
                        except FsError as exc:
                            if exc.errno == errno.ENOENT:
                                continue  # removed since the listing was read
                            out.append(DirEntry(c, name, None, None, exc.errno))
                        else:
                            out.append(DirEntry(c, name, efh, est))
                    return out, i >= n, listing.verifier
                finally:
                    os.close(dfd)

    # -- changes (the steps live in securenfs.vfs.fileops, which builds on this class) --------

    def create_obj(self, dir_fh: bytes, name: str, creds: FsCreds, kind: str, mode: int,
                   link: bytes = b"", rdev: int = 0) -> tuple[bytes, int, int]:
        from securenfs.vfs import fileops

        return fileops.create_obj(self, dir_fh, name, creds, kind, mode, link, rdev)

    def remove(self, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]:
        from securenfs.vfs import fileops

        return fileops.remove(self, dir_fh, name, creds)

    def rename(self, src_dir: bytes, old: str, dst_dir: bytes, new: str,
               creds: FsCreds) -> tuple[int, int, int, int]:
        from securenfs.vfs import fileops

        return fileops.rename(self, src_dir, old, dst_dir, new, creds)

    def link(self, src_fh: bytes, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]:
        from securenfs.vfs import fileops

        return fileops.link(self, src_fh, dir_fh, name, creds)

    def setattr(self, fh: bytes, creds: FsCreds, mode: int | None, uid: int | None, gid: int | None,
                atime: tuple[int | None] | None, mtime: tuple[int | None] | None) -> None:
        from securenfs.vfs import fileops

        fileops.setattr_path(self, fh, creds, mode, uid, gid, atime, mtime)
