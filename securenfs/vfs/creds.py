"""Acting as the caller: per-thread fsuid, fsgid and supplementary groups.

The server process runs as root (it needs CAP_DAC_READ_SEARCH for ``open_by_handle_at``
and CAP_SETUID/CAP_SETGID to switch identities).  Every file-system operation done for a
client runs inside :func:`as_caller`, so the *kernel* decides permissions (mode bits, POSIX
ACLs, LSMs) exactly as it would for a local process of that user.

Linux keeps credentials per thread; only the glibc wrappers make them process-wide.  The raw
``setfsuid``/``setfsgid``/``setgroups`` system calls (see :mod:`securenfs.vfs.kernel`)
change just the calling thread.  Changing the fsuid from 0 to another id also drops the
file-system capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, ...) from the
thread's effective set, so a non-root caller really is non-root; switching back to 0 brings
them back (capabilities(7), "Effect of user ID changes on capabilities").

A worker thread that is not acting for anyone holds the anonymous identity
(:func:`worker_initializer`), never root by accident.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from securenfs.vfs import kernel
from securenfs.vfs.errors import FsError

_MAX_ID = 0xFFFFFFFE
#: Linux's NGROUPS_MAX.
MAX_GROUPS = 65536


@dataclass(slots=True, frozen=True)
class FsCreds:
    """The identity a file-system operation runs with."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for v in (self.uid, self.gid, *self.groups):
            if not 0 <= v <= _MAX_ID:
                raise ValueError(f"id {v} is out of range 0..{_MAX_ID}")
        if len(self.groups) > MAX_GROUPS:
            raise ValueError(f"{len(self.groups)} supplementary groups exceed {MAX_GROUPS}")


ROOT = FsCreds(0, 0, ())
ANONYMOUS = FsCreds(65534, 65534, ())


class CredentialSwitchError(FsError):
    """The kernel did not accept the identity switch (is the server running as root?)."""

    def __init__(self, message: str):
        super().__init__(errno.EPERM, message)


_local = threading.local()


def current() -> FsCreds:
    """The identity the calling thread holds now (read back from the kernel)."""
    return FsCreds(kernel.getfsuid(), kernel.getfsgid(), kernel.getgroups_thread())


def _held() -> FsCreds:
    # The identity this module last set on the thread; read from the kernel the first time.
    held: FsCreds | None = getattr(_local, "creds", None)
    if held is None:
        held = current()
        _local.creds = held
    return held


def _switch(creds: FsCreds) -> None:
    held: FsCreds | None = getattr(_local, "creds", None)
    if held == creds:
        # Already verified to hold exactly this identity: nothing to change (the common case
        # of nested or repeated switches, e.g. as_server() on a thread that holds root).
        return
    _local.creds = None  # unknown until verified below
    if held is None or held.groups != creds.groups:
        kernel.setgroups_thread(creds.groups)
    kernel.setfsgid(creds.gid)
    kernel.setfsuid(creds.uid)
    # setfsuid/setfsgid return the previous value even on failure; re-read to verify.
    got_uid, got_gid = kernel.getfsuid(), kernel.getfsgid()
    if got_uid != creds.uid or got_gid != creds.gid:
        raise CredentialSwitchError(
            f"could not switch this thread to fsuid {creds.uid} fsgid {creds.gid} "
            f"(still {got_uid}/{got_gid}); the server must run as root")
    _local.creds = creds


@contextmanager
def as_caller(creds: FsCreds) -> Iterator[FsCreds]:
    """Run the body as ``creds`` on the current thread only; restore the previous identity
    afterwards (also on errors).  Nesting is allowed."""
    previous = _held()
    try:
        _switch(creds)
    except BaseException:
        _restore(previous)
        raise
    try:
        yield creds
    finally:
        _restore(previous)


def _restore(previous: FsCreds) -> None:
    try:
        _switch(previous)
    except FsError:
        # Never leave a thread with a half-switched identity: fall back to anonymous,
        # which can only do less.  Should this fail too the thread is unusable.
        _switch(ANONYMOUS)
        raise


@contextmanager
def as_server() -> Iterator[None]:
    """Briefly regain fsuid 0 for the few steps that need the server's own privileges and
    grant no access by themselves (``open_by_handle_at`` with ``O_PATH``)."""
    with as_caller(ROOT):
        yield


def worker_initializer(anonymous: FsCreds = ANONYMOUS) -> Callable[[], None]:
    """An ``initializer`` for the server's ``ThreadPoolExecutor``: every worker starts as
    the anonymous identity, so a forgotten :func:`as_caller` denies instead of granting."""

    def init() -> None:
        _switch(anonymous)

    return init
