"""Byte-range locks in the kernel: open-file-description (OFD) locks, ``F_OFD_SETLK`` and
``F_OFD_GETLK`` (Linux fcntl(2)).

The server mirrors every NFS byte-range lock into the kernel's lock table so that local
processes, Samba and other nodes of a cluster file system see it, and so that their locks
refuse the NFS client's.  Each NFS lock-owner gets its own descriptor per file: an OFD lock
belongs to the open file description, so two owners' descriptors conflict with each other
exactly as two NFS lock-owners do, while one owner's locks replace, split and merge on its
descriptor with the POSIX rules the NFS lock table follows (RFC 8881 §9.3).  A traditional
POSIX lock (``F_SETLK``) would not do: it belongs to the process, and closing *any* descriptor
of the file (a READ's cached descriptor, say) would drop every lock the server holds on it.

The kernel's byte space is ``[0, 2**63)`` (``off_t`` is signed).  NFS ranges reach 2**64: the
part of a range at or above 2**63 is not mirrored (no local process can name those bytes),
and a range reaching past 2**63 is mirrored "to the end of file".  Conflicts between NFS
owners up there are the NFS lock table's alone.

Nothing here blocks: ``F_OFD_SETLK`` answers at once (``EAGAIN`` on a conflict).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from typing import Final

from securenfs.locking.locks import END_OF_SPACE, LockType, wire_length

#: One past the last byte the kernel can lock (``OFFSET_MAX + 1``).
KERNEL_END: Final = 1 << 63

#: struct flock on Linux (x86-64 and aarch64): short l_type, short l_whence, off_t l_start,
#: off_t l_len, pid_t l_pid (native alignment, padded to 32 bytes).
_FLOCK: Final = struct.Struct("hhqqi4x")
_KTYPE: Final = {LockType.READ_LT: fcntl.F_RDLCK, LockType.WRITE_LT: fcntl.F_WRLCK}


class KernelLockError(OSError):
    """The kernel refused to record a lock for a reason other than a conflict (``ENOLCK``:
    its lock table is full; ``EBADF``: the descriptor's access mode does not allow it)."""


@dataclass(slots=True, frozen=True)
class KernelConflict:
    """A lock in the kernel that refused ours, as ``F_OFD_GETLK`` reports it.  ``pid`` is the
    holder's process for a classic POSIX lock, and -1 for an OFD lock (whose holder the
    kernel does not name)."""

    start: int
    end: int
    locktype: LockType
    pid: int

    @property
    def length(self) -> int:
        """The NFS length4 of the range (all ones for a lock to the end)."""
        return wire_length(self.start, END_OF_SPACE if self.end >= KERNEL_END else self.end)


def kernel_range(start: int, end: int) -> tuple[int, int] | None:
    """``(l_start, l_len)`` of the NFS range ``[start, end)``, or None when it lies wholly
    above the kernel's byte space.  ``l_len`` 0 means "to the end of file"."""
    if start >= KERNEL_END:
        return None
    if end >= KERNEL_END:
        return start, 0
    return start, end - start


def _flock(ltype: int, start: int, length: int) -> bytes:
    return _FLOCK.pack(ltype, os.SEEK_SET, start, length, 0)


def _set(fd: int, ltype: int, start: int, end: int) -> bool:
    r = kernel_range(start, end)
    if r is None:
        return True
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(ltype, *r))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise KernelLockError(exc.errno, f"F_OFD_SETLK: {exc.strerror}") from None
    return True


def set_lock(fd: int, locktype: LockType, start: int, end: int) -> bool:
    """Lock ``[start, end)`` on ``fd`` (replacing what ``fd`` held there: an upgrade or a
    downgrade in one step).  False when another open file description or process holds a
    conflicting lock; KernelLockError for any other refusal."""
    return _set(fd, _KTYPE[locktype.base], start, end)


def unlock(fd: int, start: int, end: int) -> None:
    """Unlock ``[start, end)`` on ``fd`` (splitting a lock that covers more)."""
    _set(fd, fcntl.F_UNLCK, start, end)


def test_lock(fd: int, locktype: LockType, start: int, end: int) -> KernelConflict | None:
    """The first lock of another open file description or process that would refuse
    ``locktype`` on ``[start, end)``; None when there is none (``fd``'s own locks never
    count)."""
    r = kernel_range(start, end)
    if r is None:
        return None
    try:
        raw = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(_KTYPE[locktype.base], *r))
    except OSError as exc:
        raise KernelLockError(exc.errno, f"F_OFD_GETLK: {exc.strerror}") from None
    ltype, _whence, kstart, klen, pid = _FLOCK.unpack(raw)
    if ltype == fcntl.F_UNLCK:
        return None
    kend = KERNEL_END if klen == 0 else kstart + klen
    return KernelConflict(kstart, kend, LockType.WRITE_LT if ltype == fcntl.F_WRLCK else LockType.READ_LT, pid)
