"""What the NFSv4 operations call on the file-system layer, as one typed Protocol.

:class:`~securenfs.vfs.local.LocalFs` (the kernel's file system, reached through persistent
handles) and :class:`~securenfs.vfs.memory.MemoryFs` (a tree held in memory, for unit tests
of single operations) both satisfy it; mypy checks both at the bottom of this module.

Every method blocks and may be called from the server's worker threads.  Failures are
:class:`~securenfs.vfs.errors.FsError` (``.errno``), turned into NFS4ERR statuses in one
place (:func:`securenfs.vfs.status.nfs_status`).  Handles are opaque bytes; a handle the
file system did not issue raises :class:`~securenfs.vfs.handles.BadHandle`, a verified
handle of a file that no longer exists FsError(ESTALE).

Data I/O goes through descriptors: ``open`` gives one to the open-file cache, and READ,
WRITE and COMMIT use it (:mod:`securenfs.vfs.fileops`).  OPEN by name
(:func:`~securenfs.vfs.fileops.open_name`) and ACL attributes (:mod:`securenfs.vfs.acls`)
are not part of it: they act on the kernel's descriptors and need :class:`LocalFs`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from securenfs.vfs.creds import FsCreds

if TYPE_CHECKING:
    from securenfs.vfs.local import DirEntry


class FileSystem(Protocol):
    """One exported tree, as the operations of RFC 8881 §18 see it."""

    # -- handles
    def root_fh(self) -> bytes: ...
    def is_root(self, fh: bytes) -> bool: ...
    def close(self) -> None: ...

    # -- attributes (GETATTR, VERIFY, ACCESS)
    def stat(self, fh: bytes) -> os.stat_result: ...
    def statvfs(self, fh: bytes) -> os.statvfs_result: ...
    def access(self, fh: bytes, creds: FsCreds, mask: int, *, read_only: bool = False) -> int: ...

    # -- data: a descriptor opened as the caller, for the open-file cache (READ, WRITE, COMMIT)
    def open(self, fh: bytes, flags: int, creds: FsCreds) -> int: ...

    # -- name space (LOOKUP, LOOKUPP, READLINK, READDIR)
    def lookup(self, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[bytes, os.stat_result]: ...
    def lookupp(self, fh: bytes, creds: FsCreds) -> bytes | None: ...
    def readlink(self, fh: bytes, creds: FsCreds) -> bytes: ...
    def readdir(self, dir_fh: bytes, cookie: int, creds: FsCreds, max_entries: int, *,
                verifier: int | None = None, with_attrs: bool = True,
                ) -> tuple[list[DirEntry], bool, int]: ...

    # -- changes (CREATE, REMOVE, RENAME, LINK, SETATTR); change attributes are the
    #    directory's ctime in nanoseconds before and after
    def create_obj(self, dir_fh: bytes, name: str, creds: FsCreds, kind: str, mode: int,
                   link: bytes = b"", rdev: int = 0) -> tuple[bytes, int, int]: ...
    def remove(self, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]: ...
    def rename(self, src_dir: bytes, old: str, dst_dir: bytes, new: str,
               creds: FsCreds) -> tuple[int, int, int, int]: ...
    def link(self, src_fh: bytes, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]: ...
    def setattr(self, fh: bytes, creds: FsCreds, mode: int | None, uid: int | None, gid: int | None,
                atime: tuple[int | None] | None, mtime: tuple[int | None] | None) -> None: ...


if TYPE_CHECKING:
    from securenfs.vfs.local import LocalFs
    from securenfs.vfs.memory import MemoryFs

    _local: type[FileSystem] = LocalFs
    _memory: type[FileSystem] = MemoryFs
