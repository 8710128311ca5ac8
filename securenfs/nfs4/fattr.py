"""fattr4: attribute values of a file or pseudo directory, encoded and decoded (RFC 8881 §5).

``SUPPORTED`` is the one declaration of what GETATTR answers; ``supported_attrs`` is
computed from it.  Encoding walks the requested bits in ascending order (the order the values
must appear in ``attr_vals``) and skips what is not supported (RFC 8881 §5.3: unsupported
attributes are simply absent from the returned mask).  Decoding (VERIFY/NVERIFY now,
SETATTR/OPEN later) is bounded and refuses write-only or unknown attributes.
"""

from __future__ import annotations

import os
import stat as stmod
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from securenfs.nfs4.xdr4 import Fattr, Nfsace4
from securenfs.proto.constants import (
    NFS4_FHSIZE,
    NFS4_MAXNAME,
    NFS4_OPAQUE_LIMIT,
    Attr,
    FhExpire,
    FType,
    Stat,
)
from securenfs.proto.errors import Nfs4Error
from securenfs.xdr import Packer, Unpacker, XdrError

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U64X2 = struct.Struct(">QQ")
_TIME = struct.Struct(">qI")
_U32X2 = struct.Struct(">II")

#: Largest file size the server reports (maxfilesize): the Linux limit for regular files.
MAX_FILE_SIZE: Final = (1 << 63) - 1
#: maxread / maxwrite advertised; READ/WRITE (core II) must honour them.
MAX_READ: Final = 1 << 20
MAX_WRITE: Final = 1 << 20
#: Hard links per file (maxlink).
MAX_LINK: Final = 65000
#: Most ACEs accepted in one acl or dacl value (a POSIX ACL that fills an ext4 xattr block
#: reads back as fewer).
MAX_ACES: Final = 1024


def bitmap_to_set(mask: list[int] | tuple[int, ...]) -> list[int]:
    """Attribute numbers set in ``mask``, ascending."""
    out: list[int] = []
    for w, word in enumerate(mask):
        base = 32 * w
        while word:
            low = word & -word
            out.append(base + low.bit_length() - 1)
            word ^= low
    return out


def set_to_bitmap(attrs: list[int] | tuple[int, ...] | set[int]) -> list[int]:
    if not attrs:
        return []
    words = [0] * (max(attrs) // 32 + 1)
    for a in attrs:
        words[a // 32] |= 1 << (a % 32)
    while words and not words[-1]:
        words.pop()
    return words


@dataclass(slots=True)
class FsInfo:
    """Values that belong to the file system (export or pseudo fs), not to one file."""

    fsid: tuple[int, int]
    lease_time: int
    fh_expire_type: int = FhExpire.PERSISTENT
    statvfs: os.statvfs_result | None = None
    fs_root: tuple[str, ...] = ()
    #: aclsupport (RFC 8881 §6.2.1.2): ALLOW|DENY where the file system stores POSIX ACLs.
    aclsupport: int = 0


@dataclass(slots=True)
class ObjInfo:
    """Everything GETATTR can report for one object."""

    st: Any  # os.stat_result or a pseudo stand-in with the same st_* fields
    fh: bytes
    fs: FsInfo
    mounted_on_fileid: int
    owner: str = ""
    group: str = ""
    fileid: int | None = None  # overrides st_ino (pseudo nodes)
    rdattr_error: int = 0
    acl: list[Nfsace4] = field(default_factory=list)


def _ftype(mode: int) -> int:
    fmt = stmod.S_IFMT(mode)
    return {
        stmod.S_IFREG: FType.REG, stmod.S_IFDIR: FType.DIR, stmod.S_IFLNK: FType.LNK,
        stmod.S_IFBLK: FType.BLK, stmod.S_IFCHR: FType.CHR, stmod.S_IFSOCK: FType.SOCK,
        stmod.S_IFIFO: FType.FIFO,
    }.get(fmt, FType.REG)


def _ns(ns: int) -> tuple[int, int]:
    sec, nsec = divmod(ns, 1_000_000_000)
    return sec, nsec


def _fileid(o: ObjInfo) -> int:
    return o.fileid if o.fileid is not None else int(o.st.st_ino)


def _vfs(o: ObjInfo, what: str) -> int:
    v = o.fs.statvfs
    if v is None:
        return 0
    if what == "avail":
        return v.f_bavail * v.f_frsize
    if what == "free":
        return v.f_bfree * v.f_frsize
    if what == "total":
        return v.f_blocks * v.f_frsize
    if what == "favail":
        return v.f_favail
    if what == "ffree":
        return v.f_ffree
    return v.f_files


# -- per-attribute codecs ------------------------------------------------------------------------
# kind: how the value is packed / unpacked.

def _p_u32(p: Packer, v: int) -> None:
    p.u32(v)


def _p_u64(p: Packer, v: int) -> None:
    p.u64(v)


def _p_bool(p: Packer, v: bool) -> None:
    p.bool(v)


def _p_pair64(p: Packer, v: tuple[int, int]) -> None:
    p.u64(v[0])
    p.u64(v[1])


def _p_time(p: Packer, v: tuple[int, int]) -> None:
    p.i64(v[0])
    p.u32(v[1])


def _p_str(p: Packer, v: str) -> None:
    p.opaque(v.encode())


def _p_opaque(p: Packer, v: bytes) -> None:
    p.opaque(v)


def _p_bitmap(p: Packer, v: list[int]) -> None:
    p.u32_array(v)


def _p_spec(p: Packer, v: tuple[int, int]) -> None:
    p.u32(v[0])
    p.u32(v[1])


def _p_locations(p: Packer, v: tuple[tuple[str, ...], list[Any]]) -> None:
    root, locs = v
    p.u32(len(root))
    for c in root:
        p.opaque(c.encode())
    p.u32(len(locs))  # no replicas or referrals are served yet


def _p_acl(p: Packer, v: list[Nfsace4]) -> None:
    p.u32(len(v))
    for ace in v:
        ace.pack(p)


def _p_dacl(p: Packer, v: tuple[int, list[Nfsace4]]) -> None:
    p.u32(v[0])
    _p_acl(p, v[1])


def _u_u32(u: Unpacker) -> int:
    return u.u32()


def _u_u64(u: Unpacker) -> int:
    return u.u64()


def _u_bool(u: Unpacker) -> bool:
    return u.bool()


def _u_pair64(u: Unpacker) -> tuple[int, int]:
    return (u.u64(), u.u64())


def _u_time(u: Unpacker) -> tuple[int, int]:
    sec, nsec = u.i64(), u.u32()
    if nsec >= 1_000_000_000:
        # Well-formed XDR but not a time (RFC 8881 §3.3.1 nseconds; §15.1.1.4).
        raise Nfs4Error(Stat.INVAL, f"nseconds {nsec} is not below 1,000,000,000")
    return (sec, nsec)


def _u_str(u: Unpacker) -> str:
    raw = u.opaque(NFS4_OPAQUE_LIMIT)
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise Nfs4Error(Stat.BADCHAR, "owner string is not UTF-8") from None


def _u_opaque(u: Unpacker) -> bytes:
    return u.opaque(NFS4_FHSIZE)


def _u_bitmap(u: Unpacker) -> list[int]:
    return u.u32_array(4)


def _u_spec(u: Unpacker) -> tuple[int, int]:
    return (u.u32(), u.u32())


def _u_acl(u: Unpacker) -> list[Nfsace4]:
    n = u.u32()
    if n > MAX_ACES:
        raise Nfs4Error(Stat.INVAL, f"an ACL of {n} ACEs exceeds this server's limit of {MAX_ACES}")
    if n * 16 > u.remaining():
        raise XdrError(f"{n} ACEs cannot fit in {u.remaining()} bytes")
    return [Nfsace4.unpack(u) for _ in range(n)]


def _u_dacl(u: Unpacker) -> tuple[int, list[Nfsace4]]:
    return (u.u32(), _u_acl(u))


def _u_locations(u: Unpacker) -> tuple[tuple[str, ...], list[Any]]:
    root = tuple(x.decode("utf-8", "replace") for x in (u.opaque(NFS4_MAXNAME) for _ in range(u.array_len(64))))
    locs: list[Any] = []
    for _ in range(u.array_len(64)):
        servers = [u.opaque(NFS4_OPAQUE_LIMIT) for _ in range(u.array_len(16))]
        path = [u.opaque(NFS4_MAXNAME) for _ in range(u.array_len(64))]
        locs.append((servers, path))
    return (root, locs)


Getter = Callable[[ObjInfo], Any]
_KINDS: dict[str, tuple[Callable[[Packer, Any], None], Callable[[Unpacker], Any]]] = {
    "u32": (_p_u32, _u_u32), "u64": (_p_u64, _u_u64), "bool": (_p_bool, _u_bool),
    "fsid": (_p_pair64, _u_pair64), "time": (_p_time, _u_time), "str": (_p_str, _u_str),
    "opaque": (_p_opaque, _u_opaque), "bitmap": (_p_bitmap, _u_bitmap), "spec": (_p_spec, _u_spec),
    "locations": (_p_locations, _u_locations), "acl": (_p_acl, _u_acl), "dacl": (_p_dacl, _u_dacl),
}

#: Attributes settable at exclusive create (OPEN, core II): RFC 8881 §5.8.1.14.
EXCLCREAT_ATTRS: Final = (Attr.SIZE, Attr.MODE, Attr.OWNER, Attr.OWNER_GROUP)


@dataclass(slots=True, frozen=True)
class AttrDef:
    attr: Attr
    kind: str
    get: Getter | None  # None: write-only (recognised when decoding only)


def _def(attr: Attr, kind: str, get: Getter | None) -> AttrDef:
    return AttrDef(attr, kind, get)


#: Every attribute the server reports, with its XDR kind and how to compute it.
SUPPORTED: Final[dict[int, AttrDef]] = {d.attr: d for d in (
    _def(Attr.SUPPORTED_ATTRS, "bitmap", lambda o: SUPPORTED_BITMAP),
    _def(Attr.TYPE, "u32", lambda o: _ftype(o.st.st_mode)),
    _def(Attr.FH_EXPIRE_TYPE, "u32", lambda o: o.fs.fh_expire_type),
    _def(Attr.CHANGE, "u64", lambda o: o.st.st_ctime_ns),
    _def(Attr.SIZE, "u64", lambda o: o.st.st_size),
    _def(Attr.LINK_SUPPORT, "bool", lambda o: True),
    _def(Attr.SYMLINK_SUPPORT, "bool", lambda o: True),
    _def(Attr.NAMED_ATTR, "bool", lambda o: False),
    _def(Attr.FSID, "fsid", lambda o: o.fs.fsid),
    _def(Attr.UNIQUE_HANDLES, "bool", lambda o: True),
    _def(Attr.LEASE_TIME, "u32", lambda o: o.fs.lease_time),
    _def(Attr.RDATTR_ERROR, "u32", lambda o: o.rdattr_error),
    _def(Attr.ACL, "acl", lambda o: o.acl),
    _def(Attr.ACLSUPPORT, "u32", lambda o: o.fs.aclsupport),
    _def(Attr.CANSETTIME, "bool", lambda o: True),
    _def(Attr.CASE_INSENSITIVE, "bool", lambda o: False),
    _def(Attr.CASE_PRESERVING, "bool", lambda o: True),
    _def(Attr.CHOWN_RESTRICTED, "bool", lambda o: True),
    _def(Attr.FILEHANDLE, "opaque", lambda o: o.fh),
    _def(Attr.FILEID, "u64", _fileid),
    _def(Attr.FILES_AVAIL, "u64", lambda o: _vfs(o, "favail")),
    _def(Attr.FILES_FREE, "u64", lambda o: _vfs(o, "ffree")),
    _def(Attr.FILES_TOTAL, "u64", lambda o: _vfs(o, "files")),
    _def(Attr.FS_LOCATIONS, "locations", lambda o: (o.fs.fs_root, [])),
    _def(Attr.HOMOGENEOUS, "bool", lambda o: True),
    _def(Attr.MAXFILESIZE, "u64", lambda o: MAX_FILE_SIZE),
    _def(Attr.MAXLINK, "u32", lambda o: MAX_LINK),
    _def(Attr.MAXNAME, "u32", lambda o: NFS4_MAXNAME),
    _def(Attr.MAXREAD, "u64", lambda o: MAX_READ),
    _def(Attr.MAXWRITE, "u64", lambda o: MAX_WRITE),
    _def(Attr.MODE, "u32", lambda o: stmod.S_IMODE(o.st.st_mode)),
    _def(Attr.NO_TRUNC, "bool", lambda o: True),
    _def(Attr.NUMLINKS, "u32", lambda o: o.st.st_nlink),
    _def(Attr.OWNER, "str", lambda o: o.owner),
    _def(Attr.OWNER_GROUP, "str", lambda o: o.group),
    _def(Attr.RAWDEV, "spec", lambda o: (os.major(o.st.st_rdev), os.minor(o.st.st_rdev))),
    _def(Attr.SPACE_AVAIL, "u64", lambda o: _vfs(o, "avail")),
    _def(Attr.SPACE_FREE, "u64", lambda o: _vfs(o, "free")),
    _def(Attr.SPACE_TOTAL, "u64", lambda o: _vfs(o, "total")),
    _def(Attr.SPACE_USED, "u64", lambda o: o.st.st_blocks * 512),
    _def(Attr.TIME_ACCESS, "time", lambda o: _ns(o.st.st_atime_ns)),
    _def(Attr.TIME_DELTA, "time", lambda o: (0, 1)),
    _def(Attr.TIME_METADATA, "time", lambda o: _ns(o.st.st_ctime_ns)),
    _def(Attr.TIME_MODIFY, "time", lambda o: _ns(o.st.st_mtime_ns)),
    _def(Attr.MOUNTED_ON_FILEID, "u64", lambda o: o.mounted_on_fileid),
    # RFC 8881 §6.2.2: the same ACEs with an aclflag4; no automatic inheritance flags are kept.
    _def(Attr.DACL, "dacl", lambda o: (0, o.acl)),
    _def(Attr.SUPPATTR_EXCLCREAT, "bitmap", lambda o: set_to_bitmap(list(EXCLCREAT_ATTRS))),
)}
SUPPORTED_BITMAP: Final[list[int]] = set_to_bitmap(list(SUPPORTED))
#: Write-only attributes (SETATTR/OPEN); GETATTR of them is NFS4ERR_INVAL (RFC 8881 §5.5).
WRITE_ONLY: Final = frozenset({Attr.TIME_ACCESS_SET, Attr.TIME_MODIFY_SET})
#: Attributes that need the owner mapper.
NEEDS_OWNER: Final = frozenset({Attr.OWNER, Attr.OWNER_GROUP})
#: Attributes read from the file's POSIX ACLs (and the owner mapper).
ACL_ATTRS: Final = frozenset({Attr.ACL, Attr.DACL})


def wanted(mask: list[int]) -> list[int]:
    """The requested attributes this server supports, ascending."""
    return [a for a in bitmap_to_set(mask) if a in SUPPORTED]


def check_readable(mask: list[int]) -> None:
    """GETATTR of a write-only attribute is NFS4ERR_INVAL (RFC 8881 §5.5)."""
    for a in bitmap_to_set(mask):
        if a in WRITE_ONLY:
            raise Nfs4Error(Stat.INVAL, f"attribute {Attr(a).name} is write-only")


def encode(obj: ObjInfo, attrs: list[int]) -> Fattr:
    """fattr4 for ``obj`` with ``attrs`` (already filtered by :func:`wanted`)."""
    p = Packer()
    for a in attrs:
        d = SUPPORTED[a]
        _KINDS[d.kind][0](p, d.get(obj))  # type: ignore[misc]
    return Fattr(set_to_bitmap(attrs), p.getvalue())


def encode_error_only(status: int) -> Fattr:
    """The per-entry answer when an entry's attributes cannot be read but rdattr_error was
    asked for (RFC 8881 §5.8.1.12)."""
    return Fattr(set_to_bitmap([Attr.RDATTR_ERROR]), _U32.pack(status))


def decode(f: Fattr, *, allow_write_only: bool = False) -> dict[int, Any]:
    """Attribute values of ``f``; NFS4ERR_ATTRNOTSUPP for an unsupported attribute,
    NFS4ERR_BADXDR when the values do not match the mask."""
    out: dict[int, Any] = {}
    u = Unpacker(f.vals)
    try:
        for a in bitmap_to_set(f.mask):
            d = SUPPORTED.get(a)
            if d is None:
                if a in WRITE_ONLY and allow_write_only:
                    out[a] = _decode_settime(u)
                    continue
                raise Nfs4Error(Stat.ATTRNOTSUPP, f"attribute {a} is not supported")
            out[a] = _KINDS[d.kind][1](u)
        u.done()
    except XdrError as exc:
        raise Nfs4Error(Stat.BADXDR, f"attribute values: {exc}") from None
    return out


def _decode_settime(u: Unpacker) -> tuple[int, int] | None:
    how = u.u32()
    if how == 1:  # SET_TO_CLIENT_TIME4
        return _u_time(u)
    if how != 0:
        raise XdrError(f"invalid time_how4 {how}")
    return None  # SET_TO_SERVER_TIME4


@dataclass(slots=True)
class PseudoStat:
    """A stat_result stand-in for pseudo-fs directories (read-only, owned by root)."""

    st_ino: int
    st_nlink: int
    st_mtime_ns: int
    st_mode: int = stmod.S_IFDIR | 0o555
    st_size: int = 4096
    st_uid: int = 0
    st_gid: int = 0
    st_rdev: int = 0
    st_blocks: int = 8
    st_atime_ns: int = field(default=0)
    st_ctime_ns: int = field(default=0)

    def __post_init__(self) -> None:
        self.st_atime_ns = self.st_atime_ns or self.st_mtime_ns
        self.st_ctime_ns = self.st_ctime_ns or self.st_mtime_ns
