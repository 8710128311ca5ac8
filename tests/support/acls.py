"""Helpers for the ACL tests: ACEs by who-string, getfacl, and the file-system check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from securenfs.acl.ace import AceType
from securenfs.client.nfs4 import Nfs4Client
from securenfs.nfs4.xdr4 import AccessArgs, AccessRes, FhArgs, Nfsace4
from securenfs.proto.constants import Op
from securenfs.vfs.acls import supports_posix_acls


def ace(kind: int, who: str, mask: int, flag: int = 0) -> Nfsace4:
    return Nfsace4(int(kind), int(flag), int(mask), who.encode())


def allow(who: str, mask: int, flag: int = 0) -> Nfsace4:
    return ace(AceType.ALLOW, who, mask, flag)


def deny(who: str, mask: int, flag: int = 0) -> Nfsace4:
    return ace(AceType.DENY, who, mask, flag)


def getfacl(path: Path) -> list[str]:
    """The POSIX ACL entries of ``path`` as getfacl (Debian's acl package) prints them."""
    out = subprocess.run(["getfacl", "-n", "-p", "-c", str(path)], check=True, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line and not line.startswith("#")]


def require_posix_acls(where: Path) -> None:
    """Skip, saying why, unless getfacl is installed and ``where`` stores POSIX ACLs."""
    if shutil.which("getfacl") is None:
        pytest.skip("getfacl is not installed (Debian package acl; scripts/bootstrap.sh installs it)")
    if not supports_posix_acls(where):
        pytest.skip(f"the file system of {where} does not store POSIX ACLs (mount it with the acl "
                    "option): the acl attribute cannot be tested here")


async def access_bits(c: Nfs4Client, fh: bytes, mask: int) -> int:
    """What ACCESS grants on ``fh`` (RFC 8881 §18.1)."""
    rep = await c.seq([(Op.PUTFH, FhArgs(fh)), (Op.ACCESS, AccessArgs(mask))])
    res = rep.results[-1][1]
    assert isinstance(res, AccessRes)
    return int(res.access)


async def open_close(c: Nfs4Client, fh: bytes, access: int = 1) -> None:
    """OPEN by file handle (CLAIM_FH) and CLOSE."""
    f = await c.open(None, fh=fh, access=access)
    await c.close_file(f)
