"""Single NFSv4 operations run directly over the in-memory file system: the status a client
would see, and what the operation left behind.  The COMPOUND loop, XDR and the wire are
tested elsewhere; here each handler gets its arguments and a context (tests/support/compound.py).
"""

from __future__ import annotations

import asyncio
import os
import stat as stat_mod
import struct
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from securenfs.nfs4 import fattr
from securenfs.nfs4.ops.attrs import op_access, op_getattr
from securenfs.nfs4.ops.fh import op_getfh, op_lookup, op_putfh
from securenfs.nfs4.ops.mutate import op_create, op_remove, op_rename, op_setattr
from securenfs.nfs4.xdr4 import (
    AccessArgs,
    BitmapArgs,
    CreateArgs,
    Fattr,
    FhArgs,
    NameArgs,
    RenameArgs,
    SetattrArgs,
    VoidArgs,
)
from securenfs.proto.constants import ACCESS4_ALL, Access4, Attr, FType, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs.creds import FsCreds
from securenfs.vfs.errors import FsError
from securenfs.vfs.status import nfs_status
from tests.support.compound import OpContext

T = TypeVar("T")
ROOT = FsCreds(0, 0)
ALICE, BOB = (1000, 1000), (2000, 2000)
#: The anonymous stateid (RFC 8881 §8.2.3): a SETATTR without a size names no open.
ANON = bytes(16)


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro
    return asyncio.run(main())


def status(coro: Awaitable[object]) -> int:
    """The status the COMPOUND loop would put in the operation's result."""
    try:
        run(coro)
    except Nfs4Error as exc:
        return exc.status
    return Stat.OK


@pytest.fixture
def op(tmp_path: Path) -> Iterator[OpContext]:
    """An export whose root is 0o777 root:root holding ``dir/`` (0o755, Alice's),
    ``dir/file`` (0o640, Alice's) and ``link`` -> ``dir``; the caller is Alice at the root."""
    o = OpContext.build(tmp_path)
    fs, root = o.fs, o.fs.root_fh()
    fs.setattr(root, ROOT, 0o777, None, None, None, None)
    alice = FsCreds(*ALICE)
    dir_fh, _, _ = fs.create_obj(root, "dir", alice, "dir", 0o755)
    fs.create_obj(dir_fh, "file", alice, "node", stat_mod.S_IFIFO | 0o640)
    fs.create_obj(root, "link", alice, "link", 0o777, b"dir")
    o.as_user(*ALICE)
    yield o
    o.close()


def _mode(o: OpContext, path: str) -> int:
    return stat_mod.S_IMODE(o.fs.stat(o.fs.fh_for_path(path)).st_mode)


# -- LOOKUP (RFC 8881 §18.15) ------------------------------------------------------------------

def test_lookup_moves_the_current_filehandle_to_the_object(op: OpContext) -> None:
    # RFC 8881 §18.15.3: "the current filehandle is replaced with the filehandle of the
    # object found" (a regular component in a directory).
    assert status(op_lookup(op.ctx, NameArgs(b"dir"))) == Stat.OK
    fh = run(op_getfh(op.ctx, VoidArgs())).fh
    assert fh == op.fs.fh_for_path("dir")
    assert status(op_lookup(op.ctx, NameArgs(b"file"))) == Stat.OK


def test_lookup_of_a_missing_name_is_noent_and_keeps_the_filehandle(op: OpContext) -> None:
    # RFC 8881 §18.15.3: a component that does not exist gives an error "and the current
    # filehandle will be unchanged".
    before = op.ctx.cfh
    assert status(op_lookup(op.ctx, NameArgs(b"absent"))) == Stat.NOENT
    assert op.ctx.cfh is before
    assert status(op_lookup(op.ctx, NameArgs(b"dir"))) == Stat.OK  # still serving


def test_lookup_in_a_file_is_notdir_and_in_a_symlink_is_symlink(op: OpContext) -> None:
    # RFC 8881 §18.15.4: "If the current filehandle supplied is not a directory but a
    # symbolic link, the error NFS4ERR_SYMLINK is returned as the error. For all other
    # non-directory file types, the error NFS4ERR_NOTDIR is returned."
    assert status(op.at("dir/file") and op_lookup(op.ctx, NameArgs(b"x"))) == Stat.NOTDIR
    assert status(op.at("link") and op_lookup(op.ctx, NameArgs(b"file"))) == Stat.SYMLINK
    assert status(op.at("dir") and op_lookup(op.ctx, NameArgs(b"file"))) == Stat.OK


def test_lookup_in_a_directory_without_search_permission_is_access(op: OpContext) -> None:
    # RFC 8881 §18.15.3: an error when "the client does not have permission to evaluate
    # the component".  Bob is "other" on Alice's 0o750 directory: no x.
    op.fs.setattr(op.fs.fh_for_path("dir"), ROOT, 0o750, None, None, None, None)
    op.as_user(*BOB).at("dir")
    assert status(op_lookup(op.ctx, NameArgs(b"file"))) == Stat.ACCESS
    op.as_user(*ALICE)
    assert status(op_lookup(op.ctx, NameArgs(b"file"))) == Stat.OK


# -- CREATE, REMOVE, RENAME (RFC 8881 §18.4, §18.25, §18.26) ------------------------------------

def test_create_dir_makes_a_directory_owned_by_the_caller_and_moves_the_fh(op: OpContext) -> None:
    # RFC 8881 §18.4.3: "The CREATE operation creates a file object other than an ordinary
    # file in a directory with a given name"; the current filehandle becomes the new object's.
    mask = fattr.set_to_bitmap([Attr.MODE])
    args = CreateArgs(FType.DIR, b"new", Fattr(mask, struct.pack(">I", 0o700)))
    res = run(op_create(op.ctx, args))
    assert res.status == Stat.OK and res.attrset == mask
    assert res.cinfo.after > res.cinfo.before  # the parent's change attribute moved
    st = op.fs.stat(op.fs.fh_for_path("new"))
    assert stat_mod.S_ISDIR(st.st_mode) and stat_mod.S_IMODE(st.st_mode) == 0o700
    assert (st.st_uid, st.st_gid) == ALICE
    assert run(op_getfh(op.ctx, VoidArgs())).fh == op.fs.fh_for_path("new")
    # The same name again: NFS4ERR_EXIST (RFC 8881 §18.4.3, "the name must not exist").
    op.at("")
    assert status(op_create(op.ctx, args)) == Stat.EXIST


def test_create_in_a_directory_the_caller_cannot_write_is_access(op: OpContext) -> None:
    op.as_user(*BOB).at("dir")  # 0o755 Alice's: Bob may search, not write
    assert status(op_create(op.ctx, CreateArgs(FType.DIR, b"bobs"))) == Stat.ACCESS
    assert [e.name for e in op.fs.readdir(op.fs.fh_for_path("dir"), 0, ROOT, 10)[0]] == ["file"]


def test_remove_deletes_the_entry_and_a_nonempty_directory_is_notempty(op: OpContext) -> None:
    # RFC 8881 §18.25.3: "The REMOVE operation removes (deletes) a directory entry named by
    # filename from the directory corresponding to the current filehandle."
    assert status(op_remove(op.ctx, NameArgs(b"dir"))) == Stat.NOTEMPTY
    file_fh = op.fs.fh_for_path("dir/file")
    op.at("dir")
    res = run(op_remove(op.ctx, NameArgs(b"file")))
    assert res.status == Stat.OK and res.cinfo.after > res.cinfo.before
    assert status(op_lookup(op.ctx, NameArgs(b"file"))) == Stat.NOENT
    # The removed file's handle is stale (RFC 8881 §15.1.2.7: "the file system object
    # referred to by the filehandle no longer exists").
    assert status(op_putfh(op.ctx, FhArgs(file_fh))) == Stat.OK
    assert status(op_getattr(op.ctx, BitmapArgs(fattr.set_to_bitmap([Attr.TYPE])))) == Stat.STALE
    op.at("")
    assert status(op_remove(op.ctx, NameArgs(b"dir"))) == Stat.OK


def test_remove_in_a_sticky_directory_is_refused_to_others(op: OpContext) -> None:
    op.fs.setattr(op.fs.root_fh(), ROOT, 0o1777, None, None, None, None)
    op.as_user(*BOB)
    assert status(op_remove(op.ctx, NameArgs(b"link"))) == Stat.PERM
    op.as_user(*ALICE)
    assert status(op_remove(op.ctx, NameArgs(b"link"))) == Stat.OK


def test_rename_moves_from_the_saved_to_the_current_directory(op: OpContext) -> None:
    # RFC 8881 §18.26.3: "The RENAME operation renames the object identified by oldname in
    # the source directory corresponding to the saved filehandle, as set by the SAVEFH
    # operation, to newname in the target directory corresponding to the current filehandle."
    fh = op.fs.fh_for_path("dir/file")
    op.at("dir").save().at("")
    res = run(op_rename(op.ctx, RenameArgs(b"file", b"moved")))
    assert res.status == Stat.OK
    assert res.source.after > res.source.before
    assert res.target.after > res.target.before
    assert op.fs.fh_for_path("moved") == fh  # the same object: its handle did not change
    assert status(op_lookup(op.ctx, NameArgs(b"moved"))) == Stat.OK
    op.at("dir").save().at("")
    assert status(op_rename(op.ctx, RenameArgs(b"file", b"again"))) == Stat.NOENT


def test_rename_of_a_directory_into_itself_is_inval(op: OpContext) -> None:
    op.at("").save().at("dir")
    assert status(op_rename(op.ctx, RenameArgs(b"dir", b"inside"))) == Stat.INVAL
    assert op.fs.lookup(op.fs.root_fh(), "dir", ROOT)  # nothing moved


# -- GETATTR, SETATTR (RFC 8881 §18.7, §18.30) --------------------------------------------------

def test_getattr_reports_type_mode_and_owner_of_the_object(op: OpContext) -> None:
    # RFC 8881 §18.7.3: "The GETATTR operation will obtain attributes for the file system
    # object specified by the current filehandle."  TYPE (1) and MODE (33) are fixed-size
    # u32s in bit order (RFC 8881 §5.6, §5.8.2.15).
    op.at("dir")
    res = run(op_getattr(op.ctx, BitmapArgs(fattr.set_to_bitmap([Attr.TYPE, Attr.MODE]))))
    assert res.status == Stat.OK
    assert res.attrs.mask == fattr.set_to_bitmap([Attr.TYPE, Attr.MODE])
    assert struct.unpack(">II", res.attrs.vals) == (FType.DIR, 0o755)
    res = run(op_getattr(op.ctx, BitmapArgs(fattr.set_to_bitmap([Attr.OWNER]))))
    (n,) = struct.unpack_from(">I", res.attrs.vals)
    assert res.attrs.vals[4:4 + n] == b"1000"  # numeric owners (no idmap in this context)


def test_setattr_mode_by_the_owner_and_refused_to_another_user(op: OpContext) -> None:
    # RFC 8881 §18.30.3: "The SETATTR operation changes one or more of the attributes of a
    # file system object."  Only the owner may change the mode: NFS4ERR_PERM otherwise
    # (RFC 8881 §15.1.6.2: "the caller is not a privileged user (root)" nor the owner).
    args = SetattrArgs(ANON, Fattr(fattr.set_to_bitmap([Attr.MODE]), struct.pack(">I", 0o700)))
    op.at("dir")
    res = run(op_setattr(op.ctx, args))
    assert res.status == Stat.OK and res.attrsset == fattr.set_to_bitmap([Attr.MODE])
    assert _mode(op, "dir") == 0o700
    op.as_user(*BOB)
    wider = SetattrArgs(ANON, Fattr(fattr.set_to_bitmap([Attr.MODE]), struct.pack(">I", 0o777)))
    assert status(op_setattr(op.ctx, wider)) == Stat.PERM
    assert _mode(op, "dir") == 0o700
    op.as_user(0, 0)  # root (no squash on this export) may
    assert status(op_setattr(op.ctx, wider)) == Stat.OK and _mode(op, "dir") == 0o777


# -- ACCESS (RFC 8881 §18.1) ----------------------------------------------------------------

def test_access_as_a_non_owner_grants_only_what_the_other_bits_allow(op: OpContext) -> None:
    # RFC 8881 §18.1.3: "ACCESS determines the access rights that a user, as identified by
    # the credentials in the RPC request, has with respect to the file system object
    # specified by the current filehandle."  Bob is "other" on Alice's 0o755 directory.
    op.as_user(*BOB).at("dir")
    res = run(op_access(op.ctx, AccessArgs(ACCESS4_ALL)))
    assert res.status == Stat.OK and res.supported == ACCESS4_ALL
    assert res.access == Access4.READ | Access4.LOOKUP
    op.as_user(*ALICE)
    res = run(op_access(op.ctx, AccessArgs(ACCESS4_ALL)))
    assert res.access == Access4.READ | Access4.LOOKUP | Access4.MODIFY | Access4.EXTEND | Access4.DELETE
    # The file is 0o640: a member of its group reads it; Bob (other) gets nothing.
    op.as_user(*BOB).at("dir/file")
    assert run(op_access(op.ctx, AccessArgs(Access4.READ | Access4.MODIFY))).access == 0
    op.as_user(3000, 3000, (1000,))
    assert run(op_access(op.ctx, AccessArgs(Access4.READ | Access4.MODIFY))).access == Access4.READ


def test_access_on_a_read_only_export_never_grants_modify(tmp_path: Path) -> None:
    o = OpContext.build(tmp_path, access="ro")
    try:
        res = run(op_access(o.ctx, AccessArgs(ACCESS4_ALL)))  # root on its 0o755 root
        assert res.access == Access4.READ | Access4.LOOKUP
    finally:
        o.close()


def test_the_in_memory_file_system_has_no_descriptors_and_says_so(op: OpContext) -> None:
    # READ, WRITE and COMMIT need a descriptor from FileSystem.open; the in-memory tree has
    # none and answers NFS4ERR_NOTSUPP, then keeps serving.
    with pytest.raises(FsError) as exc:
        op.fs.open(op.fs.fh_for_path("dir/file"), os.O_RDONLY, FsCreds(*ALICE))
    assert nfs_status(exc.value) == Stat.NOTSUPP
    assert status(op.at("dir") and op_lookup(op.ctx, NameArgs(b"file"))) == Stat.OK
