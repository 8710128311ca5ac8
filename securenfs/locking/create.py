"""OPEN's create modes (RFC 8881 §18.16.3): what to do with the file before the share part.

* UNCHECKED4: create if missing, else open the existing file (a size of 0 in the attributes
  truncates it: check shares first, see :meth:`LockingState.check_open`).
* GUARDED4: create if missing, else NFS4ERR_EXIST.
* EXCLUSIVE4 / EXCLUSIVE4_1: create if missing and store the client's 8-byte verifier with the
  file; if the file exists with the *same* verifier this is a retry of our own create and it
  succeeds (the attributes of EXCLUSIVE4_1 were set by the first create), otherwise
  NFS4ERR_EXIST.

The verifier is kept in the file's atime and mtime seconds (the first and last four bytes),
as other servers do; that is why ``suppattr_exclcreat`` must not offer time_access and
time_modify for EXCLUSIVE4_1.
"""

from __future__ import annotations

import enum
import struct

from securenfs.nfs4.constants import NFS4_VERIFIER_SIZE, Stat
from securenfs.nfs4.errors import Nfs4Error

_HALVES = struct.Struct(">II")


class CreateMode(enum.IntEnum):
    """createmode4."""

    UNCHECKED4 = 0
    GUARDED4 = 1
    EXCLUSIVE4 = 2
    EXCLUSIVE4_1 = 3


class CreateAction(enum.Enum):
    CREATE = "create"
    OPEN_EXISTING = "open-existing"


def verifier_times(verifier: bytes) -> tuple[int, int]:
    """(atime seconds, mtime seconds) that store ``verifier``."""
    if len(verifier) != NFS4_VERIFIER_SIZE:
        raise Nfs4Error(Stat.INVAL, f"create verifier of {len(verifier)} bytes")
    a, m = _HALVES.unpack(verifier)
    return a, m


def verifier_matches(atime_s: int, mtime_s: int, verifier: bytes) -> bool:
    return (atime_s, mtime_s) == verifier_times(verifier)


def decide_create(mode: int, exists: bool, same_verifier: bool = False) -> CreateAction:
    """What OPEN(OPEN4_CREATE) does for ``mode``; NFS4ERR_EXIST when it must fail.

    ``same_verifier``: for the exclusive modes, whether the existing file carries the
    request's verifier (:func:`verifier_matches`)."""
    try:
        m = CreateMode(mode)
    except ValueError:
        raise Nfs4Error(Stat.INVAL, f"unknown createmode {mode}") from None
    if not exists:
        return CreateAction.CREATE
    if m is CreateMode.UNCHECKED4:
        return CreateAction.OPEN_EXISTING
    if m is CreateMode.GUARDED4:
        raise Nfs4Error(Stat.EXIST, "GUARDED4 create of an existing file")
    if same_verifier:
        return CreateAction.OPEN_EXISTING  # a retried exclusive create succeeds (§18.16.3)
    raise Nfs4Error(Stat.EXIST, "exclusive create of a file that exists with another verifier")
