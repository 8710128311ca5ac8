"""RFC 8881 as written, with arguments our own client never sends: owners whose clientid is
not the session's, LOOKUPP and SETATTR on a symbolic link, and invalid UTF-8 in every
component name and in the COMPOUND tag.

The owner tests encode OPEN4args, LOCK4args and LOCKT4args by hand from the XDR of RFC 8881
§18.16.1, §18.10.1 and §18.11.1, so the request does not depend on our encoder.
"""

from __future__ import annotations

import os
import random
import struct
from typing import Any

import pytest

from securenfs.client.nfs4 import Nfs4Client, fattr_of
from securenfs.client.rpc import AuthSys
from securenfs.nfs4.xdr4 import (
    WRITE_LT,
    CreateArgs,
    FhArgs,
    GetFhRes,
    LockRes,
    NameArgs,
    OpenRes,
    RenameArgs,
    SetattrArgs,
    SetattrRes,
    VoidArgs,
)
from securenfs.proto.constants import Attr, Op, Stat
from tests.support.nfsserver import NfsServer, RawArgs, mounted_client, run

V = VoidArgs()
ANON = b"\0" * 16
ROOT = AuthSys(uid=0, gid=0)
BAD_UTF8 = b"\xff\xfeok"


def _opaque(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def _owner(clientid: int, owner: bytes) -> bytes:
    # struct state_owner4 { clientid4 clientid; opaque owner<NFS4_OPAQUE_LIMIT>; }
    return struct.pack(">Q", clientid) + _opaque(owner)


def open_args(name: bytes, clientid: int, owner: bytes, *, access: int = 3, deny: int = 0,
              create: bool = True) -> RawArgs:
    """OPEN4args (RFC 8881 §18.16.1): seqid, share_access, share_deny, open_owner4,
    openflag4 (OPEN4_CREATE + UNCHECKED4 + empty fattr4, or OPEN4_NOCREATE), CLAIM_NULL name."""
    body = struct.pack(">III", 0, access, deny) + _owner(clientid, owner)
    body += struct.pack(">III", 1, 0, 0) + struct.pack(">I", 0) if create else struct.pack(">I", 0)
    body += struct.pack(">I", 0) + _opaque(name)
    return RawArgs(body)


def lock_args(open_stateid: bytes, clientid: int, owner: bytes, offset: int, length: int) -> RawArgs:
    """LOCK4args (RFC 8881 §18.10.1), new lock-owner: WRITE_LT, reclaim false, offset, length,
    locker4 { TRUE, open_to_lock_owner4 { open_seqid, open_stateid, lock_seqid, lock_owner4 } }."""
    body = struct.pack(">IIQQI", WRITE_LT, 0, offset, length, 1)
    body += struct.pack(">I", 0) + open_stateid + struct.pack(">I", 0) + _owner(clientid, owner)
    return RawArgs(body)


def lockt_args(clientid: int, owner: bytes, offset: int, length: int) -> RawArgs:
    """LOCKT4args (RFC 8881 §18.11.1): locktype, offset, length, lock_owner4."""
    return RawArgs(struct.pack(">IQQ", WRITE_LT, offset, length) + _owner(clientid, owner))


async def _alive(c: Nfs4Client) -> None:
    r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.GETFH, V)])
    assert r.status == 0


# -- owners: the clientid field is ignored ------------------------------------------------------

@pytest.mark.parametrize("which", ["zero", "random", "other-client"])
def test_owner_clientid_field_is_ignored(state_server: NfsServer, which: str) -> None:
    # RFC 8881 §18.16.3 (OPEN): "the server MUST ignore the clientid field" of open_owner4 and
    # use the client ID of the session; §18.10.3 (LOCK) and §18.11.3 (LOCKT) say the same of
    # lock_owner4.  Owners are keyed by the session's client, so two clients sending the same
    # owner bytes (each naming the *other* client in the field) still get separate owners.
    async def main() -> None:
        a, root_a = await mounted_client(state_server, auth=ROOT)
        b, root_b = await mounted_client(state_server, auth=ROOT)
        try:
            field_a = {"zero": 0, "random": random.getrandbits(64) | 1, "other-client": b.clientid}[which]
            field_b = {"zero": 0, "random": random.getrandbits(64) | 1, "other-client": a.clientid}[which]
            # OPEN with deny=BOTH by A's owner "same".
            r = await a.seq_raw([(Op.PUTFH, FhArgs(root_a)), (Op.OPEN, open_args(b"f", field_a, b"same", deny=3)),
                                 (Op.GETFH, V)])
            assert r.status == 0, Stat(r.status).name
            res_a = r.results[2][1]
            assert isinstance(res_a, OpenRes)
            # B's owner with the same bytes is another owner: the deny reservation holds it off.
            r = await b.seq_raw([(Op.PUTFH, FhArgs(root_b)),
                                 (Op.OPEN, open_args(b"f", field_b, b"same", access=1, create=False))])
            assert r.status == Stat.SHARE_DENIED
            # A second file, opened by both, for the lock-owners.
            opened = []
            for c, root, fld in ((a, root_a, field_a), (b, root_b, field_b)):
                r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.OPEN, open_args(b"g", fld, b"same")),
                                     (Op.GETFH, V)])
                assert r.status == 0, Stat(r.status).name
                o, g = r.results[2][1], r.results[3][1]
                assert isinstance(o, OpenRes) and isinstance(g, GetFhRes)
                opened.append((g.fh, o.stateid))
            (gfh, sid_a), (_gfh, sid_b) = opened
            r = await a.seq_raw([(Op.PUTFH, FhArgs(gfh)), (Op.LOCK, lock_args(sid_a, field_a, b"L", 0, 100))])
            assert r.status == 0, Stat(r.status).name
            # LOCKT by A's own lock-owner (any clientid field): no conflict with itself.
            r = await a.seq_raw([(Op.PUTFH, FhArgs(gfh)), (Op.LOCKT, lockt_args(field_a, b"L", 0, 10))])
            assert r.status == 0
            # LOCKT and LOCK by B's "L": a different owner, DENIED, and LOCK4denied names A's
            # client (the server fills the owner in, whatever the request carried).
            r = await b.seq_raw([(Op.PUTFH, FhArgs(gfh)), (Op.LOCKT, lockt_args(field_b, b"L", 0, 10))])
            assert r.status == Stat.DENIED
            den = r.results[-1][1]
            assert isinstance(den, LockRes) and den.denied is not None
            assert den.denied.owner.clientid == a.clientid and den.denied.owner.owner == b"L"
            r = await b.seq_raw([(Op.PUTFH, FhArgs(gfh)), (Op.LOCK, lock_args(sid_b, field_b, b"L", 50, 10))])
            assert r.status == Stat.DENIED
            r = await b.seq_raw([(Op.PUTFH, FhArgs(gfh)), (Op.LOCK, lock_args(sid_b, field_b, b"L", 200, 10))])
            assert r.status == 0
            await _alive(a)
            await _alive(b)
        finally:
            await a.close()
            await b.close()

    run(main())


# -- symbolic links as the current file handle --------------------------------------------------

def test_lookupp_of_a_symlink_is_nfs4err_symlink(nfs_server: NfsServer) -> None:
    # RFC 8881 §15.1.2.9: NFS4ERR_SYMLINK when the current filehandle is a symbolic link and
    # the operation needs a directory; LOOKUPP does (§18.14.3), as LOOKUP does (§18.15.3).
    (nfs_server.paths["/a"] / "d").mkdir()
    (nfs_server.paths["/a"] / "plain").write_bytes(b"x")
    os.symlink("d", nfs_server.paths["/a"] / "link")

    async def main() -> None:
        c, root = await mounted_client(nfs_server, auth=ROOT)
        try:
            r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"link")), (Op.LOOKUPP, V)])
            assert r.status == Stat.SYMLINK and r.results[-1][0] == Op.LOOKUPP
            r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"plain")), (Op.LOOKUPP, V)])
            assert r.status == Stat.NOTDIR
            r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(b"d")), (Op.LOOKUPP, V),
                                 (Op.GETFH, V)])
            assert r.status == 0 and r.results[-1][1].fh == root  # type: ignore[union-attr]
        finally:
            await c.close()

    run(main())


def test_setattr_mode_of_a_symlink_is_accepted_and_changes_nothing(nfs_server: NfsServer) -> None:
    # A recursive chmod over NFS sends SETATTR(mode) to every object, links included; Linux
    # has no mode on a link, so the server accepts it and leaves the link as it is.
    d = nfs_server.paths["/a"]
    (d / "file").write_bytes(b"x")
    os.symlink("file", d / "link")
    before = os.lstat(d / "link")

    async def main() -> None:
        c, root = await mounted_client(nfs_server, auth=ROOT)
        try:
            for name, mode in ((b"link", 0o700), (b"file", 0o600)):
                r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.LOOKUP, NameArgs(name)),
                                     (Op.SETATTR, SetattrArgs(ANON, fattr_of({Attr.MODE: mode})))])
                assert r.status == 0, (name, Stat(r.status).name)
                res = r.results[-1][1]
                assert isinstance(res, SetattrRes)
        finally:
            await c.close()

    run(main())
    after = os.lstat(d / "link")
    assert (after.st_mode, after.st_ctime_ns) == (before.st_mode, before.st_ctime_ns)
    assert os.readlink(d / "link") == "file"
    assert os.stat(d / "file").st_mode & 0o7777 == 0o600


# -- UTF-8: one check, one answer ---------------------------------------------------------------

def _name_ops(root: bytes, bad: bytes) -> dict[str, list[tuple[int, Any]]]:
    put = (Op.PUTFH, FhArgs(root))
    return {
        "LOOKUP": [put, (Op.LOOKUP, NameArgs(bad))],
        "OPEN": [put, (Op.OPEN, open_args(bad, 0, b"o"))],
        "CREATE": [put, (Op.CREATE, CreateArgs(2, bad))],  # NF4DIR
        "RENAME-old": [put, (Op.SAVEFH, V), (Op.RENAME, RenameArgs(bad, b"new"))],
        "RENAME-new": [put, (Op.SAVEFH, V), (Op.RENAME, RenameArgs(b"exists", bad))],
        "LINK": [put, (Op.LOOKUP, NameArgs(b"exists")), (Op.SAVEFH, V), put, (Op.LINK, NameArgs(bad))],
        "REMOVE": [put, (Op.REMOVE, NameArgs(bad))],
        "SECINFO": [put, (Op.SECINFO, NameArgs(bad))],
    }


@pytest.mark.parametrize("op", ["LOOKUP", "OPEN", "CREATE", "RENAME-old", "RENAME-new", "LINK", "REMOVE",
                                "SECINFO"])
def test_invalid_utf8_component_is_inval(nfs_server: NfsServer, op: str) -> None:
    # RFC 8881 §14.2: component4 is a UTF-8 string; a server that checks it answers
    # NFS4ERR_INVAL for one that is not UTF-8.  Every operation that takes a name answers
    # the same, and nothing is created, renamed or removed.
    d = nfs_server.paths["/a"]
    (d / "exists").write_bytes(b"x")

    async def main() -> None:
        c, root = await mounted_client(nfs_server, auth=ROOT)
        try:
            ops = _name_ops(root, BAD_UTF8)[op]
            r = await c.seq_raw(ops)
            assert r.status == Stat.INVAL, Stat(r.status).name
            assert r.results[-1][0] == ops[-1][0] and len(r.results) == len(ops) + 1
            # A valid non-ASCII name goes through the same check and is fine.
            r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.CREATE, CreateArgs(2, "répertoire".encode()))])
            assert r.status == 0
            await _alive(c)
        finally:
            await c.close()

    run(main())
    assert sorted(p.name for p in d.iterdir()) == ["exists", "répertoire"]


def test_invalid_utf8_tag_is_inval(nfs_server: NfsServer) -> None:
    # RFC 8881 §16.2.3: the tag is a utf8str_cs; an invalid one is NFS4ERR_INVAL (§14.2) and no
    # operation is evaluated (resarray empty), the tag is echoed back.
    async def main() -> None:
        c, root = await mounted_client(nfs_server, auth=ROOT)
        try:
            r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.GETFH, V)], tag=b"\xc3(")
            assert (r.status, r.results, r.tag) == (Stat.INVAL, [], b"\xc3(")
            # Also with no operation at all; overlong forms and UTF-16 surrogates are not UTF-8.
            for bad in (b"\xc3(", b"\xc0\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"ok\xff"):
                r = await c.compound([], tag=bad)
                assert (r.status, r.results) == (Stat.INVAL, []), bad
            r = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.GETFH, V)], tag="étiquette".encode())
            assert r.status == 0 and r.tag == "étiquette".encode()
        finally:
            await c.close()

    run(main())
