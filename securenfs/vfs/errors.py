"""Errors raised by the file-system layer.

Every failure of a file-system operation is an :class:`FsError` carrying an ``errno`` value;
the NFSv4 layer turns the errno into an NFS4ERR status (EACCES -> NFS4ERR_ACCESS, ESTALE ->
NFS4ERR_STALE, ENOENT -> NFS4ERR_NOENT, ...).  Two subclasses carry a meaning that no errno
expresses exactly:

* :class:`BadName` -- a component name that can never name a file ("", ".", "..", or one
  holding "/" or NUL); NFS4ERR_BADNAME (NFS4ERR_INVAL for the empty name and for one that is
  not UTF-8, RFC 8881 §18.13.3, §14.2).
* :class:`BadCookie` / :class:`CookieVerifierMismatch` -- READDIR cookie problems
  (NFS4ERR_BAD_COOKIE / NFS4ERR_NOT_SAME, RFC 8881 §18.23.3).
"""

from __future__ import annotations

import errno as _errno
import os


class FsError(OSError):
    """A file-system operation failed; ``.errno`` says why, ``.strerror`` says it for people."""

    def __init__(self, err: int, message: str = ""):
        super().__init__(err, message or os.strerror(err))

    @classmethod
    def from_oserror(cls, exc: OSError, what: str = "") -> FsError:
        err = exc.errno if exc.errno is not None else _errno.EIO
        text = exc.strerror or os.strerror(err)
        return cls(err, f"{what}: {text}" if what else text)


class BadName(FsError):
    """A name that is not a valid single path component (NFS4ERR_BADNAME / NFS4ERR_INVAL)."""

    def __init__(self, message: str, *, empty: bool = False, not_utf8: bool = False):
        super().__init__(_errno.EINVAL, message)
        self.empty = empty
        #: NFS4ERR_INVAL rather than NFS4ERR_BADNAME: empty, or not UTF-8 (RFC 8881 §14.2).
        self.invalid = empty or not_utf8


class BadCookie(FsError):
    """A READDIR cookie the server never hands out (NFS4ERR_BAD_COOKIE)."""

    def __init__(self, message: str):
        super().__init__(_errno.EINVAL, message)


class CookieVerifierMismatch(FsError):
    """The client's cookie verifier no longer matches the directory (NFS4ERR_NOT_SAME)."""

    def __init__(self, message: str):
        super().__init__(_errno.EINVAL, message)
