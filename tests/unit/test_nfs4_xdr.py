"""NFSv4.1 types, attributes, names and the op table, without a server."""

from __future__ import annotations

import os

import pytest

from securenfs.nfs4 import fattr
from securenfs.nfs4.optable import NOT_BUILT, OPTABLE
from securenfs.nfs4.xdr4 import (
    ChannelAttrs,
    CreateSessionArgs,
    ExchangeIdArgs,
    ExchangeIdRes,
    Fattr,
    ReaddirArgs,
    SequenceArgs,
    SequenceRes,
)
from securenfs.proto.constants import Attr, Op, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs.errors import FsError
from securenfs.vfs.names import check_name
from securenfs.vfs.status import nfs_status
from securenfs.xdr import Packer, Unpacker, XdrError


def _rt(obj):  # type: ignore[no-untyped-def]
    p = Packer()
    obj.pack(p)
    u = Unpacker(p.getvalue())
    out = type(obj).unpack(u)
    u.done()
    return out


def test_round_trips() -> None:
    for obj in (SequenceArgs(b"s" * 16, 7, 3, 15, True), SequenceRes(0, b"s" * 16, 7, 3, 15, 15, 0),
                ExchangeIdArgs(b"v" * 8, b"owner", 0), ExchangeIdRes(0, 5, 6, 1, 0, None, 0, b"o", b"s", None),
                CreateSessionArgs(5, 6, 0, ChannelAttrs(), ChannelAttrs()),
                ReaddirArgs(0, b"\0" * 8, 100, 1000, [3])):
        assert _rt(obj) == obj


def test_bounded_decoding() -> None:
    p = Packer()
    p.u64(0)
    p.fixed(b"\0" * 8)
    p.u32x2(1, 1)
    p.u32(1000)  # a bitmap of 1000 words
    with pytest.raises(XdrError):
        ReaddirArgs.unpack(Unpacker(p.getvalue()))


def test_fattr_encode_decode_and_supported() -> None:
    st = os.stat("/")
    obj = fattr.ObjInfo(st, b"fh", fattr.FsInfo((1, 2), 90), 7, owner="0", group="0")
    attrs = fattr.wanted(fattr.set_to_bitmap([Attr.TYPE, Attr.SIZE, Attr.FSID, Attr.OWNER, Attr.MOUNTED_ON_FILEID,
                                              Attr.SACL]))
    assert Attr.SACL not in attrs  # not supported (RFC 8881 §6.2.3): left out of the reply's mask
    vals = fattr.decode(fattr.encode(obj, attrs))
    assert vals == {Attr.TYPE: 2, Attr.SIZE: st.st_size, Attr.FSID: (1, 2), Attr.OWNER: "0",
                    Attr.MOUNTED_ON_FILEID: 7}
    sup = fattr.bitmap_to_set(fattr.SUPPORTED_BITMAP)
    for required in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 19, 75):  # RFC 8881 §5.6 REQUIRED
        assert required in sup
    with pytest.raises(Nfs4Error) as ei:
        fattr.decode(Fattr(fattr.set_to_bitmap([Attr.SIZE]), b"\0\0"))
    assert ei.value.status == Stat.BADXDR
    with pytest.raises(Nfs4Error) as ei:
        fattr.check_readable(fattr.set_to_bitmap([Attr.TIME_MODIFY_SET]))
    assert ei.value.status == Stat.INVAL


@pytest.mark.parametrize("raw,status", [(b"", Stat.INVAL), (b".", Stat.BADNAME), (b"..", Stat.BADNAME),
                                        (b"a/b", Stat.BADNAME), (b"a\0", Stat.BADNAME),
                                        (b"x" * 256, Stat.NAMETOOLONG), (b"\xc3", Stat.INVAL)])
def test_bad_names(raw: bytes, status: int) -> None:
    with pytest.raises(FsError) as ei:
        check_name(raw)
    assert nfs_status(ei.value) == status


def test_op_table_covers_every_op() -> None:
    assert set(OPTABLE) == {op for op in Op if op != Op.ILLEGAL}
    assert Op.DELEGRETURN in NOT_BUILT and Op.SETCLIENTID in NOT_BUILT and Op.OPEN not in NOT_BUILT
    alone = {op for op, s in OPTABLE.items() if s.alone}
    assert alone == {Op.EXCHANGE_ID, Op.CREATE_SESSION, Op.DESTROY_SESSION, Op.BIND_CONN_TO_SESSION,
                     Op.DESTROY_CLIENTID}
