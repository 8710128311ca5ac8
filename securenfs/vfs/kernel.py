"""The Linux system calls Python's ``os`` module does not wrap.

* ``name_to_handle_at(2)`` / ``open_by_handle_at(2)``: persistent kernel file handles.
* ``setfsuid(2)``, ``setfsgid(2)``, ``setgroups(2)`` as *raw* system calls.  glibc's
  ``setgroups``/``setresuid`` wrappers broadcast the change to every thread of the process
  (POSIX requires process-wide credentials); the raw syscalls change only the calling thread,
  which is what lets a pool worker act as one caller while its neighbours act as others.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from securenfs.vfs.errors import FsError

#: struct file_handle's f_handle[] is at most this long (include/linux/exportfs.h).
MAX_HANDLE_SZ = 128
AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000

# Syscall numbers per machine (arch/x86/entry/syscalls/syscall_64.tbl;
# include/uapi/asm-generic/unistd.h for aarch64).  The 32-bit-id variants only.
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"setgroups": 116, "setfsuid": 122, "setfsgid": 123},
    "aarch64": {"setgroups": 159, "setfsuid": 151, "setfsgid": 152},
}


def _syscall_numbers() -> dict[str, int]:
    machine = os.uname().machine
    try:
        return _SYSCALLS[machine]
    except KeyError:
        raise RuntimeError(f"per-thread credentials are not supported on {machine}: "
                           "add its setfsuid/setfsgid/setgroups numbers to securenfs.vfs.kernel") from None


SYS = _syscall_numbers()

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_name_to_handle_at = _libc.name_to_handle_at
_name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                               ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_name_to_handle_at.restype = ctypes.c_int

_open_by_handle_at = _libc.open_by_handle_at
_open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_open_by_handle_at.restype = ctypes.c_int


class _FileHandle(ctypes.Structure):
    _fields_ = [
        ("handle_bytes", ctypes.c_uint32),
        ("handle_type", ctypes.c_int32),
        ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ),
    ]


@dataclass(slots=True, frozen=True)
class KernelHandle:
    handle_type: int
    data: bytes
    mount_id: int


def _raise_errno(what: str) -> None:
    err = ctypes.get_errno()
    raise FsError(err, f"{what}: {os.strerror(err)}")


def name_to_handle_at(dirfd: int, name: str | bytes, flags: int = 0) -> KernelHandle:
    """The kernel handle of ``name`` relative to ``dirfd`` (symlinks not followed unless
    ``AT_SYMLINK_FOLLOW`` is given; ``AT_EMPTY_PATH`` with ``name=""`` for ``dirfd`` itself)."""
    fh = _FileHandle()
    fh.handle_bytes = MAX_HANDLE_SZ
    mount_id = ctypes.c_int(0)
    raw = os.fsencode(name)
    if _name_to_handle_at(dirfd, raw, ctypes.byref(fh), ctypes.byref(mount_id), flags) != 0:
        _raise_errno(f"name_to_handle_at({raw!r})")
    return KernelHandle(fh.handle_type, bytes(fh.f_handle[: fh.handle_bytes]), mount_id.value)


def open_by_handle_at(mount_fd: int, handle_type: int, data: bytes, flags: int) -> int:
    """Open the inode a kernel handle names (needs CAP_DAC_READ_SEARCH in the effective set,
    i.e. fsuid 0).  A handle of a removed inode fails with ESTALE."""
    if len(data) > MAX_HANDLE_SZ:
        raise FsError(22, "kernel handle too long")
    fh = _FileHandle()
    fh.handle_bytes = len(data)
    fh.handle_type = handle_type
    ctypes.memmove(fh.f_handle, data, len(data))
    fd = _open_by_handle_at(mount_fd, ctypes.byref(fh), flags | os.O_CLOEXEC)
    if fd < 0:
        _raise_errno("open_by_handle_at")
    return int(fd)


_INVALID_ID = 0xFFFFFFFF


def setfsuid(uid: int) -> int:
    """Set this thread's fsuid; returns the previous one.  ``setfsuid`` reports no errors,
    so callers verify with :func:`getfsuid`."""
    return int(_syscall(SYS["setfsuid"], ctypes.c_uint(uid)))


def setfsgid(gid: int) -> int:
    return int(_syscall(SYS["setfsgid"], ctypes.c_uint(gid)))


def getfsuid() -> int:
    # An invalid id changes nothing and returns the current value (setfsuid(2) NOTES).
    return int(_syscall(SYS["setfsuid"], ctypes.c_uint(_INVALID_ID)))


def getfsgid() -> int:
    return int(_syscall(SYS["setfsgid"], ctypes.c_uint(_INVALID_ID)))


def setgroups_thread(groups: tuple[int, ...]) -> None:
    """Set the supplementary groups of the calling thread only (raw syscall)."""
    arr = (ctypes.c_uint * max(len(groups), 1))(*groups)
    if _syscall(SYS["setgroups"], ctypes.c_size_t(len(groups)), arr) != 0:
        _raise_errno("setgroups")


def getgroups_thread() -> tuple[int, ...]:
    # getgroups(2) is a plain syscall in glibc and reads the calling thread's credentials.
    return tuple(os.getgroups())


@dataclass(slots=True, frozen=True)
class ThreadIds:
    """The credentials the kernel reports for the calling thread."""

    uid: tuple[int, int, int, int]  # real, effective, saved, filesystem
    gid: tuple[int, int, int, int]
    groups: tuple[int, ...]

    @property
    def fsuid(self) -> int:
        return self.uid[3]

    @property
    def fsgid(self) -> int:
        return self.gid[3]


def thread_ids() -> ThreadIds:
    """Read /proc/thread-self/status: what the kernel believes this thread is."""
    uid: tuple[int, ...] = ()
    gid: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    with open("/proc/thread-self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "Uid":
                uid = tuple(int(x) for x in value.split())
            elif key == "Gid":
                gid = tuple(int(x) for x in value.split())
            elif key == "Groups":
                groups = tuple(int(x) for x in value.split())
    return ThreadIds(uid, gid, groups)  # type: ignore[arg-type]
