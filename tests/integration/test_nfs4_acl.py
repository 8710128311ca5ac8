"""The acl attribute over the real server, stored as POSIX ACLs the kernel enforces.

AUTH_SYS callers with numeric ids here (the owner mapper's numeric mode); the LDAP names and
Kerberos callers are in test_nfs4_acl_idmap.py.  What is on disk is read back with getfacl
(Debian's acl package), an independent reader of the xattrs.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.acl.ace import AceFlag, AceMask, AceType
from securenfs.client.nfs4 import ANON_STATEID, Nfs4Client, fattr_of
from securenfs.client.rpc import AuthSys
from securenfs.config import ClientRule
from securenfs.nfs4 import fattr
from securenfs.nfs4.xdr4 import (
    Fattr,
    FattrArgs,
    FhArgs,
    Nfsace4,
    SetattrArgs,
)
from securenfs.proto.constants import Access4, Attr, Op, Stat
from tests.support.acls import (
    access_bits,
    ace,
    allow,
    deny,
    getfacl,
    open_close,
    require_posix_acls,
)
from tests.support.nfsserver import NfsServer, status_of

OWNER, OWNER_GID = 1000, 1000
READER, WRITER, STRANGER = 1001, 1002, 1003
TEAM = 2001  # a group READER is in

R = AceMask.READ_DATA
W = AceMask.WRITE_DATA | AceMask.APPEND_DATA
X = AceMask.EXECUTE
OWNER_ALL = R | W | X | AceMask.WRITE_ACL | AceMask.WRITE_ATTRIBUTES
INHERIT = AceFlag.FILE_INHERIT | AceFlag.DIRECTORY_INHERIT










@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[NfsServer]:
    require_posix_acls(tmp_path)
    srv = NfsServer(tmp_path, [("/data", ["sys"], [ClientRule(squash="root")])])
    d = srv.paths["/data"]
    os.chmod(d, 0o755)
    f = d / "report.txt"
    f.write_text("quarterly numbers\n")
    os.chown(f, OWNER, OWNER_GID)
    os.chmod(f, 0o640)
    proj = d / "project"
    proj.mkdir()
    os.chown(proj, OWNER, OWNER_GID)
    os.chmod(proj, 0o755)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def _client(srv: NfsServer, uid: int, gids: tuple[int, ...] = ()) -> Nfs4Client:
    c = await Nfs4Client.connect("127.0.0.1", srv.port, AuthSys(uid=uid, gid=uid, gids=gids))
    await c.establish()
    await c.reclaim_complete()  # RFC 8881 §18.51.3: before the first non-reclaim OPEN
    return c


def run(coro: Any) -> Any:
    return asyncio.run(coro)






def test_aclsupport_and_the_acl_of_a_plain_file(acl_server: NfsServer) -> None:
    async def main() -> dict[int, Any]:
        c = await _client(acl_server, OWNER)
        try:
            fh = await c.lookup_path("/data/report.txt")
            return await c.getattr(fh, [Attr.SUPPORTED_ATTRS, Attr.ACL, Attr.ACLSUPPORT, Attr.MODE])
        finally:
            await c.close()

    attrs = run(main())
    # the file system stores POSIX ACLs, not NFSv4 ones (docs/acls.md: system.nfs4_acl unused)
    with pytest.raises(OSError) as info:
        os.getxattr(acl_server.paths["/data"] / "report.txt", "system.nfs4_acl")
    assert info.value.errno == errno.EOPNOTSUPP
    # RFC 8881 §6.2.1.2: aclsupport says which ACE types the server supports
    assert attrs[Attr.ACLSUPPORT] == 0x1 | 0x2  # ACL4_SUPPORT_ALLOW_ACL | ACL4_SUPPORT_DENY_ACL
    supported = fattr.bitmap_to_set(attrs[Attr.SUPPORTED_ATTRS])
    assert Attr.ACL in supported and Attr.DACL in supported
    assert Attr.SACL not in supported  # RFC 8881 §6.2.3: sacl is not supported here
    # a 0640 file without an ACL: the ACL the mode bits stand for
    anyone = AceMask.READ_ATTRIBUTES | AceMask.READ_ACL | AceMask.SYNCHRONIZE
    assert attrs[Attr.ACL] == [
        allow("OWNER@", R | W | anyone | AceMask.WRITE_ATTRIBUTES | AceMask.WRITE_ACL),
        allow("GROUP@", R | anyone),
        allow("EVERYONE@", anyone),
    ]


def test_set_acl_is_stored_as_a_posix_acl_and_enforced(acl_server: NfsServer) -> None:
    path = acl_server.paths["/data"] / "report.txt"
    new = [allow("OWNER@", OWNER_ALL), allow(str(WRITER), R | W), allow("GROUP@", R),
           allow(str(TEAM), R, AceFlag.IDENTIFIER_GROUP), allow("EVERYONE@", 0)]

    async def main() -> tuple[list[int], Any, dict[str, int]]:
        owner = await _client(acl_server, OWNER)
        try:
            fh = await owner.lookup_path("/data/report.txt")
            change = (await owner.getattr(fh, [Attr.CHANGE]))[Attr.CHANGE]
            done = await owner.setattr(fh, {Attr.ACL: new})
            back = await owner.getattr(fh, [Attr.ACL, Attr.MODE, Attr.CHANGE, Attr.DACL])
            back["changed"] = back[Attr.CHANGE] != change
        finally:
            await owner.close()
        bits: dict[str, int] = {}
        for name, uid, gids in (("writer", WRITER, ()), ("reader", READER, (TEAM,)), ("stranger", STRANGER, ())):
            c = await _client(acl_server, uid, gids)
            try:
                fh = await c.lookup_path("/data/report.txt")
                bits[name] = await access_bits(c, fh, Access4.READ | Access4.MODIFY)
                if name == "stranger":
                    bits["stranger-open"] = await status_of(c.open(fh=fh, access=1, dir_fh=None))
            finally:
                await c.close()
        return done, back, bits

    done, back, bits = run(main())
    assert Attr.ACL in done
    # what the kernel keeps: the named user and group, the mask, and the mode's bits from it
    assert getfacl(path) == ["user::rwx", f"user:{WRITER}:rw-", "group::r--", f"group:{TEAM}:r--",
                             "mask::rw-", "other::---"]
    assert back[Attr.MODE] == 0o760
    assert back["changed"]  # clients see the change attribute move and drop cached access
    assert back[Attr.DACL] == (0, back[Attr.ACL])  # RFC 8881 §6.2.2: the same ACEs, no flags
    whos = [(a.type, a.who.decode()) for a in back[Attr.ACL]]
    assert (AceType.ALLOW, str(WRITER)) in whos and (AceType.ALLOW, str(TEAM)) in whos
    team = next(a for a in back[Attr.ACL] if a.who == str(TEAM).encode())
    assert team.flag & AceFlag.IDENTIFIER_GROUP  # RFC 8881 §6.2.1.4: the who is a group
    # the kernel decides ACCESS as each caller (RFC 8881 §18.1)
    assert bits["writer"] == Access4.READ | Access4.MODIFY
    assert bits["reader"] == Access4.READ
    assert bits["stranger"] == 0
    assert bits["stranger-open"] == Stat.ACCESS


def test_unrepresentable_acls_are_refused_and_nothing_changes(acl_server: NfsServer) -> None:
    path = acl_server.paths["/data"] / "report.txt"
    before = getfacl(path)
    cases = {
        # POSIX cannot take away the right to read an ACL
        "deny-read-acl": ([allow("OWNER@", OWNER_ALL), deny(str(WRITER), AceMask.READ_ACL)], Stat.ATTRNOTSUPP),
        # nor stop the owner changing it
        "deny-owner-write-acl": ([deny("OWNER@", AceMask.WRITE_ACL)], Stat.ATTRNOTSUPP),
        # nor audit (RFC 8881 §6.2.1.2: aclsupport says ALLOW and DENY only)
        "audit": ([ace(AceType.AUDIT, "EVERYONE@", R)], Stat.ATTRNOTSUPP),
        # special principals POSIX has no notion of
        "interactive": ([allow("INTERACTIVE@", R)], Stat.ATTRNOTSUPP),
        # inheritance flags on a file
        "inherit-on-file": ([allow("EVERYONE@", R, INHERIT)], Stat.ATTRNOTSUPP),
        # not valid NFSv4 at all: an undefined ACE type
        "undefined-type": ([ace(9, "EVERYONE@", R)], Stat.INVAL),  # type: ignore[arg-type]
        # a name the owner mapper does not know (RFC 8881 §5.9)
        "unknown-name": ([allow("nosuchuser@example.test", R)], Stat.BADOWNER),
    }

    async def main() -> tuple[dict[str, int], int, int, int, int]:
        c = await _client(acl_server, OWNER)
        try:
            fh = await c.lookup_path("/data/report.txt")
            got = {name: await status_of(c.setattr(fh, {Attr.ACL: aces})) for name, (aces, _) in cases.items()}
            # sacl is not supported (RFC 8881 §6.2.3): NFS4ERR_ATTRNOTSUPP
            # an empty sacl (nfsacl41: flag 0, no ACEs), which our client would never send
            sacl = Fattr(fattr.set_to_bitmap([Attr.SACL]), bytes(8))
            sacl_status = await status_of(c.seq([(Op.PUTFH, FhArgs(fh)), (Op.SETATTR, SetattrArgs(ANON_STATEID, sacl))]))
            both = await status_of(c.setattr(fh, {Attr.ACL: [allow("OWNER@", R)], Attr.DACL: (0, [allow("OWNER@", R)])}))
            auto = await status_of(c.setattr(fh, {Attr.DACL: (1, [allow("OWNER@", OWNER_ALL)])}))
            # and the server still serves the next request
            mode = (await c.getattr(fh, [Attr.MODE]))[Attr.MODE]
            return got, sacl_status, both, auto, mode
        finally:
            await c.close()

    got, sacl_status, both, auto, mode = run(main())
    assert got == {name: want for name, (_, want) in cases.items()}
    assert sacl_status == Stat.ATTRNOTSUPP
    assert both == Stat.INVAL
    assert auto == Stat.ATTRNOTSUPP  # ACL4_AUTO_INHERIT: automatic inheritance is not kept
    assert mode == 0o640
    assert getfacl(path) == before


def test_only_the_owner_may_change_the_acl(acl_server: NfsServer) -> None:
    async def main() -> int:
        c = await _client(acl_server, WRITER)
        try:
            fh = await c.lookup_path("/data/report.txt")
            return await status_of(c.setattr(fh, {Attr.ACL: [allow("EVERYONE@", R | W)]}))
        finally:
            await c.close()

    assert run(main()) == Stat.PERM  # the kernel refused it (EPERM), acting as uid 1002
    assert getfacl(acl_server.paths["/data"] / "report.txt") == ["user::rw-", "group::r--", "other::---"]


def test_mode_and_acl_stay_consistent(acl_server: NfsServer) -> None:
    path = acl_server.paths["/data"] / "report.txt"

    async def main() -> tuple[Any, Any, Any]:
        c = await _client(acl_server, OWNER)
        try:
            fh = await c.lookup_path("/data/report.txt")
            await c.setattr(fh, {Attr.ACL: [allow("OWNER@", OWNER_ALL), allow(str(WRITER), R | W),
                                            allow("GROUP@", R), allow("EVERYONE@", R)]})
            # RFC 8881 §6.4.1.1: setting mode rewrites OWNER@, GROUP@ and EVERYONE@; the named
            # user keeps its entry, limited by the new group bits (the POSIX mask)
            await c.setattr(fh, {Attr.MODE: 0o640})
            after_mode = await c.getattr(fh, [Attr.ACL, Attr.MODE])
            facl_after_mode = getfacl(path)
            # RFC 8881 §6.4.1.3: mode and ACL together: the mode first, then the ACL, whose
            # bits the mode then shows
            await c.setattr(fh, {Attr.MODE: 0o777, Attr.ACL: [allow("OWNER@", OWNER_ALL), allow("GROUP@", R),
                                                              allow("EVERYONE@", 0)]})
            both = await c.getattr(fh, [Attr.ACL, Attr.MODE])
            return after_mode, facl_after_mode, both
        finally:
            await c.close()

    after_mode, facl_after_mode, both = run(main())
    assert after_mode[Attr.MODE] == 0o640
    assert facl_after_mode == ["user::rw-", f"user:{WRITER}:rw-\t#effective:r--", "group::r--", "mask::r--",
                               "other::---"]
    writer = [a for a in after_mode[Attr.ACL] if a.who == str(WRITER).encode() and a.type == AceType.ALLOW]
    assert writer and not writer[0].access_mask & AceMask.WRITE_DATA
    everyone = [a for a in after_mode[Attr.ACL] if a.who == b"EVERYONE@"]
    assert everyone == [allow("EVERYONE@", AceMask.READ_ATTRIBUTES | AceMask.READ_ACL | AceMask.SYNCHRONIZE)]
    assert both[Attr.MODE] == 0o740
    assert getfacl(path) == ["user::rwx", "group::r--", "other::---"]  # three entries: the mode alone
    # POSIX -> NFSv4 -> POSIX: the ACL read back, written again, is the same ACL
    assert both[Attr.ACL][0].who == b"OWNER@"


def test_acl_read_back_and_written_again_is_unchanged(acl_server: NfsServer) -> None:
    path = acl_server.paths["/data"] / "project"
    subprocess.run(["setfacl", "-m", f"u:{WRITER}:rwx,g:{TEAM}:r-x,d:u:{READER}:r-x,o::--x", str(path)], check=True)
    before = getfacl(path)

    async def main() -> tuple[list[Nfsace4], list[Nfsace4], int, int]:
        c = await _client(acl_server, OWNER)
        try:
            fh = await c.lookup_path("/data/project")
            first = (await c.getattr(fh, [Attr.ACL]))[Attr.ACL]
            await c.setattr(fh, {Attr.ACL: first})
            second = (await c.getattr(fh, [Attr.ACL]))[Attr.ACL]
            rep = await c.seq([(Op.PUTFH, FhArgs(fh)), (Op.VERIFY, FattrArgs(fattr_of({Attr.ACL: second})))])
            verify = rep.status
            nverify = await status_of(c.seq([(Op.PUTFH, FhArgs(fh)), (Op.NVERIFY, FattrArgs(fattr_of({Attr.ACL: second})))]))
            return first, second, verify, nverify
        finally:
            await c.close()

    first, second, verify, nverify = run(main())
    assert first == second
    assert getfacl(path) == before
    # the default ACL shows as inheritable ACEs (RFC 8881 §6.2.1.4.1)
    inherit_only = [a for a in first if a.flag & AceFlag.INHERIT_ONLY]
    assert inherit_only and all(a.flag & INHERIT == INHERIT for a in inherit_only)
    assert any(a.who == str(READER).encode() for a in inherit_only)
    # RFC 8881 §18.31.3 / §18.15.3: VERIFY of the same value succeeds, NVERIFY answers SAME
    assert verify == 0
    assert nverify == Stat.SAME


def test_inherited_aces_apply_on_create(acl_server: NfsServer) -> None:
    proj = acl_server.paths["/data"] / "project"

    async def main() -> tuple[int, int, int, Any]:
        c = await _client(acl_server, OWNER)
        try:
            dfh = await c.lookup_path("/data/project")
            await c.setattr(dfh, {Attr.ACL: [
                allow("OWNER@", OWNER_ALL | AceMask.DELETE_CHILD),
                allow("GROUP@", R | X), allow("EVERYONE@", R | X),
                # inherited by new files and directories only (RFC 8881 §6.2.1.4.1)
                allow("OWNER@", OWNER_ALL | AceMask.DELETE_CHILD, INHERIT | AceFlag.INHERIT_ONLY),
                allow(str(WRITER), R | W | X | AceMask.DELETE_CHILD, INHERIT | AceFlag.INHERIT_ONLY),
                allow("GROUP@", R | X, INHERIT | AceFlag.INHERIT_ONLY),
                allow("EVERYONE@", 0, INHERIT | AceFlag.INHERIT_ONLY),
            ]})
            f = await c.open(dfh, "minutes.txt", create=True, attrs={Attr.MODE: 0o664})
            await c.close_file(f)
            sub, _ = await c.create(dfh, "sub", attrs={Attr.MODE: 0o775})
            new_acl = (await c.getattr(f.fh, [Attr.ACL]))[Attr.ACL]
        finally:
            await c.close()
        w = await _client(acl_server, WRITER)
        s = await _client(acl_server, STRANGER)
        try:
            ffh = await w.lookup_path("/data/project/minutes.txt")
            writer_bits = await access_bits(w, ffh, Access4.READ | Access4.MODIFY)
            sfh = await s.lookup_path("/data/project/minutes.txt")
            stranger_bits = await access_bits(s, sfh, Access4.READ | Access4.MODIFY)
            sub_status = await status_of(w.create(await w.lookup_path("/data/project/sub"), "by-writer"))
        finally:
            await w.close()
            await s.close()
        return writer_bits, stranger_bits, sub_status, new_acl

    writer_bits, stranger_bits, sub_status, new_acl = run(main())
    # the kernel applied the default ACL and the client's mode; the server did not chmod
    # over it (which would have given EVERYONE@ the mode's r--)
    assert getfacl(proj / "minutes.txt") == ["user::rw-", f"user:{WRITER}:rwx\t#effective:rw-", "group::r-x\t#effective:r--",
                                             "mask::rw-", "other::---"]
    assert writer_bits == Access4.READ | Access4.MODIFY
    assert stranger_bits == 0
    assert any(a.who == str(WRITER).encode() for a in new_acl)
    # a new directory inherits the default ACL as its own default too
    assert f"default:user:{WRITER}:rwx" in getfacl(proj / "sub")
    assert sub_status == 0  # WRITER may create in it, as inherited


def test_acl_size_bound(acl_server: NfsServer) -> None:
    bound = fattr.MAX_ACES

    async def main() -> tuple[int, int, int]:
        c = await _client(acl_server, OWNER)
        try:
            fh = await c.lookup_path("/data/report.txt")
            at_bound = [allow("OWNER@", OWNER_ALL)] + [allow("EVERYONE@", R)] * (bound - 1)
            ok = await status_of(c.setattr(fh, {Attr.ACL: at_bound}))
            over = await status_of(c.setattr(fh, {Attr.ACL: at_bound + [allow("EVERYONE@", R)]}))
            mode = (await c.getattr(fh, [Attr.MODE]))[Attr.MODE]
            return ok, over, mode
        finally:
            await c.close()

    ok, over, mode = run(main())
    assert ok == 0
    assert over == Stat.INVAL
    assert mode == 0o744


def test_open_checks_permission_again_after_the_acl_changed(acl_server: NfsServer) -> None:
    # The server caches descriptors per file and caller; an OPEN by file handle must still
    # be refused once the ACL no longer allows it (RFC 8881 §18.16.3: OPEN checks access).
    async def main() -> tuple[int, int, int]:
        owner = await _client(acl_server, OWNER)
        writer = await _client(acl_server, WRITER)
        try:
            ofh = await owner.lookup_path("/data/report.txt")
            await owner.setattr(ofh, {Attr.ACL: [allow("OWNER@", OWNER_ALL), allow(str(WRITER), R),
                                                 allow("EVERYONE@", 0)]})
            wfh = await writer.lookup_path("/data/report.txt")
            first = await status_of(open_close(writer, wfh))
            await owner.setattr(ofh, {Attr.ACL: [allow("OWNER@", OWNER_ALL), allow("EVERYONE@", 0)]})
            second = await status_of(open_close(writer, wfh))
            await owner.setattr(ofh, {Attr.ACL: [allow("OWNER@", OWNER_ALL), allow("EVERYONE@", R)]})
            third = await status_of(open_close(writer, wfh))
            return first, second, third
        finally:
            await owner.close()
            await writer.close()

    assert run(main()) == (0, Stat.ACCESS, 0)


def test_readdir_reports_each_entrys_acl(acl_server: NfsServer) -> None:
    d = acl_server.paths["/data"]
    subprocess.run(["setfacl", "-m", f"u:{READER}:r--", str(d / "report.txt")], check=True)

    async def main() -> dict[bytes, dict[int, Any]]:
        c = await _client(acl_server, OWNER)
        try:
            fh = await c.lookup_path("/data")
            entries = await c.readdir_all(fh, attrs=[Attr.ACL, Attr.MODE])
            single = await c.getattr(await c.lookup_path("/data/report.txt"), [Attr.ACL])
        finally:
            await c.close()
        out = {name: attrs for _, name, attrs in entries}
        out[b"getattr"] = single
        return out

    got = run(main())
    assert got[b"report.txt"][Attr.ACL] == got[b"getattr"][Attr.ACL]
    assert any(a.who == str(READER).encode() for a in got[b"report.txt"][Attr.ACL])
    assert not any(a.who == str(READER).encode() for a in got[b"project"][Attr.ACL])


def test_acl_in_createattrs_and_on_the_pseudo_root(acl_server: NfsServer) -> None:
    d = acl_server.paths["/data"] / "project"
    acl = [allow("OWNER@", OWNER_ALL), allow(str(READER), R), allow("GROUP@", 0), allow("EVERYONE@", 0)]

    async def main() -> tuple[list[int], list[int], dict[int, Any], int]:
        c = await _client(acl_server, OWNER)
        try:
            dfh = await c.lookup_path("/data/project")
            f = await c.open(dfh, "made-with-acl", create=True, attrs={Attr.MODE: 0o666, Attr.ACL: acl})
            await c.close_file(f)
            _, res = await c.create(dfh, "dir-with-acl", attrs={Attr.ACL: acl})
            root = await c.getattr(await c.lookup_path("/"), [Attr.ACL, Attr.ACLSUPPORT])
            # the pseudo file system cannot be changed
            ro = await status_of(c.setattr(await c.lookup_path("/"), {Attr.ACL: acl}))
            return f.attrset, fattr.bitmap_to_set(res.attrset), root, ro
        finally:
            await c.close()

    open_set, create_set, root, ro = run(main())
    # RFC 8881 §18.16.4 / §18.4.4: attrset says the acl was applied
    assert Attr.ACL in open_set and Attr.ACL in create_set
    # the ACL, not the 0666 create mode, decides (§6.4.1.3: the mode first, then the ACL)
    assert getfacl(d / "made-with-acl") == ["user::rwx", f"user:{READER}:r--", "group::---", "mask::r--",
                                            "other::---"]
    # on a directory w also needs DELETE_CHILD, which this ACL does not give
    assert getfacl(d / "dir-with-acl") == ["user::r-x", f"user:{READER}:r--", "group::---", "mask::r--",
                                           "other::---"]
    assert root[Attr.ACLSUPPORT] == 0
    assert [a.who for a in root[Attr.ACL]] == [b"OWNER@", b"GROUP@", b"EVERYONE@"]
    assert ro == Stat.ROFS


def test_malformed_acl_values(acl_server: NfsServer) -> None:
    async def main() -> tuple[int, int, int]:
        c = await _client(acl_server, OWNER)
        try:
            fh = await c.lookup_path("/data/report.txt")
            # 5 ACEs announced, none present: the values do not match the mask (RFC 8881 §5.5)
            short = Fattr(fattr.set_to_bitmap([Attr.ACL]), (5).to_bytes(4, "big"))
            badxdr = await status_of(c.seq([(Op.PUTFH, FhArgs(fh)), (Op.SETATTR, SetattrArgs(ANON_STATEID, short))]))
            # a who-string that is not UTF-8 (RFC 8881 §5.9 / §6.2.1.5: utf8str_mixed)
            badchar = await status_of(c.setattr(fh, {Attr.ACL: [Nfsace4(AceType.ALLOW, 0, R, b"\xffbob")]}))
            mode = (await c.getattr(fh, [Attr.MODE]))[Attr.MODE]
            return badxdr, badchar, mode
        finally:
            await c.close()

    assert run(main()) == (Stat.BADXDR, Stat.BADCHAR, 0o640)
