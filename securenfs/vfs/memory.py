"""A file system held in memory, for unit tests of single NFSv4 operations.

It satisfies :class:`~securenfs.vfs.protocol.FileSystem` the way
:class:`~securenfs.vfs.local.LocalFs` does, with the kernel's rules written out: a tree of
nodes with a mode, owner, group, times and data; permissions checked as the caller from the
owner, group and other bits (uid 0 bypasses read and write checks, and execute checks when
any execute bit is set, as Linux's ``generic_permission`` does); symbolic links never
followed; the sticky bit on directories; chmod and explicit times only by the owner;
chown only by uid 0.  POSIX ACLs are not modelled.

Handles come from the same :class:`~securenfs.vfs.handles.HandleCodec` as LocalFs's (so
PUTFH verifies them the same way): the kernel-handle part is the inode number and a
generation, so a handle of a removed file answers ESTALE even when its number is reused.

It holds no descriptors: ``open`` answers EOPNOTSUPP (NFS4ERR_NOTSUPP), so READ, WRITE,
COMMIT and OPEN cannot run over it.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from securenfs.proto.constants import Access4
from securenfs.vfs.creds import FsCreds
from securenfs.vfs.errors import BadCookie, CookieVerifierMismatch, FsError
from securenfs.vfs.handles import HandleCodec
from securenfs.vfs.local import DirEntry, ExportRoot, export_file_key
from securenfs.vfs.names import check_name

#: The handle type written into handles of this file system (LocalFs uses the kernel's).
HANDLE_TYPE = 0x4D454D
_R, _W, _X = 4, 2, 1
#: Fixed answers of statvfs: 4 KiB blocks, a million of them, a million inodes.
_BLOCKS = 1 << 20


@dataclass(slots=True)
class MemNode:
    ino: int
    generation: int
    mode: int  # type and permission bits, as st_mode
    uid: int
    gid: int
    atime: int
    mtime: int
    ctime: int
    nlink: int = 1
    rdev: int = 0
    data: bytearray = field(default_factory=bytearray)
    target: bytes = b""  # a symbolic link's text
    children: dict[str, int] = field(default_factory=dict)  # directories: name -> ino
    parent: int = 0  # directories: the ino of ".."

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.mode)

    @property
    def is_link(self) -> bool:
        return stat_mod.S_ISLNK(self.mode)

    def stat(self, dev: int) -> os.stat_result:
        size = len(self.target) if self.is_link else len(self.data)
        if self.is_dir:
            size = 4096
        return os.stat_result((
            self.mode, self.ino, dev, self.nlink, self.uid, self.gid, size,
            self.atime // 1_000_000_000, self.mtime // 1_000_000_000, self.ctime // 1_000_000_000,
            self.atime / 1e9, self.mtime / 1e9, self.ctime / 1e9,
            self.atime, self.mtime, self.ctime,
            4096, (size + 511) // 512, self.rdev,
        ))


class MemoryFs:
    """An exported tree in memory.  Thread-safe (one lock); every method is quick."""

    def __init__(self, export: ExportRoot, codec: HandleCodec, *, root_uid: int = 0, root_gid: int = 0,
                 root_mode: int = 0o755):
        self.export = export
        self.codec = codec
        self._lock = threading.Lock()
        self._nodes: dict[int, MemNode] = {}
        self._next_ino = 2
        self._clock = 0
        self._dev = 0x6D656D00 | (export.export_id & 0xFF)
        root = self._new(stat_mod.S_IFDIR | root_mode, root_uid, root_gid)
        root.nlink = 2
        root.parent = root.ino
        self._root = root.ino

    def close(self) -> None:
        pass

    # -- helpers ------------------------------------------------------------------------------

    def _now(self) -> int:
        # Strictly increasing, so every change moves a directory's change attribute.
        self._clock = max(time.time_ns(), self._clock + 1)
        return self._clock

    def _new(self, mode: int, uid: int, gid: int) -> MemNode:
        ino = self._next_ino
        self._next_ino += 1
        now = self._now()
        node = MemNode(ino, ino, mode, uid, gid, now, now, now)
        self._nodes[ino] = node
        return node

    def _fh(self, node: MemNode) -> bytes:
        raw = node.ino.to_bytes(8, "big") + node.generation.to_bytes(8, "big")
        return self.codec.file(self.export.export_id, HANDLE_TYPE, raw)

    def _get(self, fh: bytes) -> MemNode:
        key = export_file_key(self.codec, self.export, fh)
        raw = key.kernel_handle
        if key.handle_type != HANDLE_TYPE or len(raw) != 16:
            raise FsError(errno.ESTALE, "the file no longer exists")
        node = self._nodes.get(int.from_bytes(raw[:8], "big"))
        if node is None or node.generation != int.from_bytes(raw[8:], "big"):
            raise FsError(errno.ESTALE, "the file no longer exists")
        return node

    def _dir(self, fh: bytes) -> MemNode:
        node = self._get(fh)
        if node.is_link:
            raise FsError(errno.ELOOP, "a symbolic link is not a directory")
        if not node.is_dir:
            raise FsError(errno.ENOTDIR, "not a directory")
        return node

    @staticmethod
    def _class_bits(node: MemNode, creds: FsCreds) -> int:
        """The rwx bits that apply to ``creds``: owner, else group, else other."""
        if creds.uid == node.uid:
            return (node.mode >> 6) & 7
        if node.gid == creds.gid or node.gid in creds.groups:
            return (node.mode >> 3) & 7
        return node.mode & 7

    def _may(self, node: MemNode, creds: FsCreds, want: int) -> bool:
        if creds.uid == 0:
            # Root reads and writes anything; it executes a file only when some x bit is set.
            return not want & _X or node.is_dir or bool(node.mode & 0o111)
        return self._class_bits(node, creds) & want == want

    def _require(self, node: MemNode, creds: FsCreds, want: int, what: str) -> None:
        if not self._may(node, creds, want):
            raise FsError(errno.EACCES, f"{what}: permission denied")

    def _child(self, d: MemNode, name: str) -> MemNode:
        ino = d.children.get(name)
        if ino is None:
            raise FsError(errno.ENOENT, f"{name}: no such file or directory")
        return self._nodes[ino]

    def _sticky_denies(self, d: MemNode, victim: MemNode, creds: FsCreds) -> bool:
        return bool(d.mode & stat_mod.S_ISVTX) and creds.uid not in (0, d.uid, victim.uid)

    def _unlink_node(self, d: MemNode, name: str, node: MemNode) -> None:
        del d.children[name]
        node.nlink -= 2 if node.is_dir else 1
        if node.is_dir:
            d.nlink -= 1
        node.ctime = self._now()
        if node.nlink <= 0:
            del self._nodes[node.ino]

    def _changed(self, *dirs: MemNode) -> None:
        now = self._now()
        for d in dirs:
            d.mtime = d.ctime = now

    # -- handles ------------------------------------------------------------------------------

    def root_fh(self) -> bytes:
        with self._lock:
            return self._fh(self._nodes[self._root])

    def is_root(self, fh: bytes) -> bool:
        with self._lock:
            return self._get(fh).ino == self._root

    def fh_for_path(self, path: str | os.PathLike[str]) -> bytes:
        """The handle of a path relative to the root (no permission checks; for tests)."""
        with self._lock:
            node = self._nodes[self._root]
            for part in Path(path).parts:
                if part in ("", "."):
                    continue
                node = self._child(node, part)
            return self._fh(node)

    # -- attributes ---------------------------------------------------------------------------

    def stat(self, fh: bytes) -> os.stat_result:
        with self._lock:
            return self._get(fh).stat(self._dev)

    def statvfs(self, fh: bytes) -> os.statvfs_result:
        with self._lock:
            self._get(fh)
            used = len(self._nodes)
            return os.statvfs_result((4096, 4096, _BLOCKS, _BLOCKS - used, _BLOCKS - used,
                                      _BLOCKS, _BLOCKS - used, _BLOCKS - used, 0, 255))

    def access(self, fh: bytes, creds: FsCreds, mask: int, *, read_only: bool = False) -> int:
        """As :meth:`LocalFs.access <securenfs.vfs.local.LocalFs.access>`: bits that do not
        apply to the object's type are never granted; on a read-only export neither are
        MODIFY, EXTEND and DELETE."""
        with self._lock:
            node = self._get(fh)
            if node.is_link:
                return int(mask & Access4.READ)
            wanted: dict[int, int] = {Access4.READ: _R}
            if node.is_dir:
                wanted |= {Access4.LOOKUP: _X, Access4.MODIFY: _W, Access4.EXTEND: _W, Access4.DELETE: _W | _X}
            else:
                wanted |= {Access4.MODIFY: _W, Access4.EXTEND: _W, Access4.EXECUTE: _X}
            if read_only:
                for b in (Access4.MODIFY, Access4.EXTEND, Access4.DELETE):
                    wanted.pop(b, None)
            granted = 0
            for bit, want in wanted.items():
                if mask & bit and self._may(node, creds, want):
                    granted |= bit
            return granted

    def open(self, fh: bytes, flags: int, creds: FsCreds) -> int:
        with self._lock:
            self._get(fh)
        raise FsError(errno.EOPNOTSUPP, "an in-memory file system has no descriptors")

    # -- name space ---------------------------------------------------------------------------

    def lookup(self, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[bytes, os.stat_result]:
        check_name(os.fsencode(name))
        with self._lock:
            d = self._get(dir_fh)
            if d.is_link:
                raise FsError(errno.ELOOP, "LOOKUP in a symbolic link")
            if not d.is_dir:
                raise FsError(errno.ENOTDIR, "LOOKUP in a non-directory")
            self._require(d, creds, _X, name)
            node = self._child(d, name)
            return self._fh(node), node.stat(self._dev)

    def lookupp(self, fh: bytes, creds: FsCreds) -> bytes | None:
        with self._lock:
            node = self._get(fh)
            if node.is_link:
                raise FsError(errno.ELOOP, "LOOKUPP of a symbolic link")
            if not node.is_dir:
                raise FsError(errno.ENOTDIR, "LOOKUPP of a non-directory")
            if node.ino == self._root:
                return None
            self._require(node, creds, _X, "..")
            return self._fh(self._nodes[node.parent])

    def readlink(self, fh: bytes, creds: FsCreds) -> bytes:
        with self._lock:
            node = self._get(fh)
            if not node.is_link:
                raise FsError(errno.EINVAL, "READLINK of something that is not a symbolic link")
            return node.target

    def readdir(self, dir_fh: bytes, cookie: int, creds: FsCreds, max_entries: int, *,
                verifier: int | None = None, with_attrs: bool = True,
                ) -> tuple[list[DirEntry], bool, int]:
        """Entries in name order; an entry's cookie is its position plus 3 (0, 1 and 2 are
        never handed out) and the verifier is the directory's change attribute."""
        if cookie in (1, 2):
            raise BadCookie(f"cookie {cookie} is reserved and never handed out")
        if max_entries < 1:
            raise FsError(errno.EINVAL, "max_entries must be at least 1")
        with self._lock:
            d = self._get(dir_fh)
            if not d.is_dir:
                raise FsError(errno.ENOTDIR, "READDIR of a non-directory")
            self._require(d, creds, _R, "readdir")
            if cookie != 0 and verifier is not None and verifier != d.ctime:
                raise CookieVerifierMismatch("the directory changed in a way that invalidates cookies; restart at 0")
            names = sorted(d.children)
            start = 0 if cookie == 0 else cookie - 2
            if start > len(names):
                raise BadCookie(f"cookie {cookie} is past the end of the directory")
            out: list[DirEntry] = []
            i = start
            while i < len(names) and len(out) < max_entries:
                name = names[i]
                i += 1
                if not with_attrs:
                    out.append(DirEntry(i + 2, name, None, None))
                    continue
                if not self._may(d, creds, _X):
                    out.append(DirEntry(i + 2, name, None, None, errno.EACCES))
                    continue
                node = self._nodes[d.children[name]]
                out.append(DirEntry(i + 2, name, self._fh(node), node.stat(self._dev)))
            return out, i >= len(names), d.ctime

    # -- changes ------------------------------------------------------------------------------

    def create_obj(self, dir_fh: bytes, name: str, creds: FsCreds, kind: str, mode: int,
                   link: bytes = b"", rdev: int = 0) -> tuple[bytes, int, int]:
        """CREATE: a directory (``kind`` "dir"), symbolic link ("link") or special file
        ("node"; ``mode`` carries its type) owned by the caller."""
        with self._lock:
            d = self._dir(dir_fh)
            before = d.ctime
            self._require(d, creds, _W | _X, name)
            if name in d.children:
                raise FsError(errno.EEXIST, f"{name}: file exists")
            # A directory with the setgid bit hands its group down (and the bit to directories).
            gid = d.gid if d.mode & stat_mod.S_ISGID else creds.gid
            if kind == "dir":
                bits = stat_mod.S_IFDIR | (mode & 0o7777)
                if d.mode & stat_mod.S_ISGID:
                    bits |= stat_mod.S_ISGID
            elif kind == "link":
                bits = stat_mod.S_IFLNK | 0o777
            else:
                if stat_mod.S_IFMT(mode) not in (stat_mod.S_IFBLK, stat_mod.S_IFCHR, stat_mod.S_IFIFO,
                                                 stat_mod.S_IFSOCK):
                    raise FsError(errno.EINVAL, f"{name}: not a special file type")
                if stat_mod.S_IFMT(mode) in (stat_mod.S_IFBLK, stat_mod.S_IFCHR) and creds.uid != 0:
                    raise FsError(errno.EPERM, f"{name}: only root creates device files")
                bits = mode
            node = self._new(bits, creds.uid, gid)
            if kind == "dir":
                node.nlink = 2
                node.parent = d.ino
                d.nlink += 1
            elif kind == "link":
                node.target = bytes(link)
            else:
                node.rdev = rdev
            d.children[name] = node.ino
            self._changed(d)
            return self._fh(node), before, d.ctime

    def remove(self, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]:
        with self._lock:
            d = self._dir(dir_fh)
            before = d.ctime
            self._require(d, creds, _W | _X, name)
            node = self._child(d, name)
            if self._sticky_denies(d, node, creds):
                raise FsError(errno.EPERM, f"{name}: the sticky directory lets only the owner remove it")
            if node.is_dir and node.children:
                raise FsError(errno.ENOTEMPTY, f"{name}: directory not empty")
            self._unlink_node(d, name, node)
            self._changed(d)
            return before, d.ctime

    def rename(self, src_dir: bytes, old: str, dst_dir: bytes, new: str,
               creds: FsCreds) -> tuple[int, int, int, int]:
        with self._lock:
            s, t = self._dir(src_dir), self._dir(dst_dir)
            sb, tb = s.ctime, t.ctime
            self._require(s, creds, _W | _X, old)
            self._require(t, creds, _W | _X, new)
            node = self._child(s, old)
            if self._sticky_denies(s, node, creds):
                raise FsError(errno.EPERM, f"{old}: the sticky directory lets only the owner rename it")
            if node.is_dir:
                # A directory cannot move below itself.
                up = t
                while True:
                    if up.ino == node.ino:
                        raise FsError(errno.EINVAL, f"{old} -> {new}: a directory cannot move into itself")
                    if up.ino == self._root:
                        break
                    up = self._nodes[up.parent]
            other_ino = t.children.get(new)
            if other_ino == node.ino:
                return sb, s.ctime, tb, t.ctime  # the same file: nothing to do (rename(2))
            if other_ino is not None:
                other = self._nodes[other_ino]
                if self._sticky_denies(t, other, creds):
                    raise FsError(errno.EPERM, f"{new}: the sticky directory lets only the owner replace it")
                if node.is_dir and not other.is_dir:
                    raise FsError(errno.ENOTDIR, f"{new}: not a directory")
                if other.is_dir and not node.is_dir:
                    raise FsError(errno.EISDIR, f"{new}: is a directory")
                if other.is_dir and other.children:
                    raise FsError(errno.ENOTEMPTY, f"{new}: directory not empty")
                self._unlink_node(t, new, other)
            del s.children[old]
            t.children[new] = node.ino
            if node.is_dir and s is not t:
                node.parent = t.ino
                s.nlink -= 1
                t.nlink += 1
            node.ctime = self._now()
            self._changed(s, t)
            return sb, s.ctime, tb, t.ctime

    def link(self, src_fh: bytes, dir_fh: bytes, name: str, creds: FsCreds) -> tuple[int, int]:
        with self._lock:
            node = self._get(src_fh)
            if node.is_dir:
                raise FsError(errno.EISDIR, "LINK of a directory")
            d = self._dir(dir_fh)
            before = d.ctime
            self._require(d, creds, _W | _X, name)
            if name in d.children:
                raise FsError(errno.EEXIST, f"{name}: file exists")
            d.children[name] = node.ino
            node.nlink += 1
            node.ctime = self._now()
            self._changed(d)
            return before, d.ctime

    def setattr(self, fh: bytes, creds: FsCreds, mode: int | None, uid: int | None, gid: int | None,
                atime: tuple[int | None] | None, mtime: tuple[int | None] | None) -> None:
        """As :func:`securenfs.vfs.fileops.setattr_path`: chown, chmod and times as the
        caller, with chown(2), chmod(2) and utimensat(2)'s rules."""
        with self._lock:
            node = self._get(fh)
            root, owner = creds.uid == 0, creds.uid == node.uid
            if uid is not None and uid != node.uid and not root:
                raise FsError(errno.EPERM, "setattr: only root changes a file's owner")
            if gid is not None and gid != node.gid and not root and not (
                    owner and (gid == creds.gid or gid in creds.groups)):
                raise FsError(errno.EPERM, "setattr: the group must be one of the owner's")
            if mode is not None and not node.is_link and not (root or owner):
                raise FsError(errno.EPERM, "setattr: only the owner changes the mode")
            if atime is not None or mtime is not None:
                if node.is_link:
                    raise FsError(errno.EINVAL, "times of a symbolic link cannot be set here")
                explicit = (atime is not None and atime[0] is not None) or (mtime is not None and mtime[0] is not None)
                if not (root or owner) and (explicit or not self._may(node, creds, _W)):
                    raise FsError(errno.EPERM if explicit else errno.EACCES, "setattr: times")
            now = self._now()
            if uid is not None or gid is not None:
                node.uid = node.uid if uid is None else uid
                node.gid = node.gid if gid is None else gid
                if not root and not node.is_dir:
                    node.mode &= ~(stat_mod.S_ISUID | stat_mod.S_ISGID)
            if mode is not None and not node.is_link:
                bits = mode & 0o7777
                if not root and node.gid != creds.gid and node.gid not in creds.groups:
                    bits &= ~stat_mod.S_ISGID
                node.mode = stat_mod.S_IFMT(node.mode) | bits
            if atime is not None:
                node.atime = now if atime[0] is None else atime[0]
            if mtime is not None:
                node.mtime = now if mtime[0] is None else mtime[0]
            node.ctime = now
