"""NFSv4.1 protocol numbers (RFC 8881, XDR in RFC 5662), declared once for the project.

Operation numbers, status codes (each with a one-line meaning for logs), attribute numbers
and the flag words of the operations built here.  Tests import these; nothing re-declares them.
"""

from __future__ import annotations

import enum
from typing import Final

NFS4_MINOR_VERSION: Final = 1
NFS4_FHSIZE: Final = 128
NFS4_VERIFIER_SIZE: Final = 8
NFS4_SESSIONID_SIZE: Final = 16
NFS4_OPAQUE_LIMIT: Final = 1024
#: Longest component name accepted (maxname attribute); Linux file systems allow 255 bytes.
NFS4_MAXNAME: Final = 255
#: Longest symlink text returned by READLINK (and maxlink is about hard links, not this).
NFS4_MAXPATH: Final = 4096
#: Bitmaps on the wire: 3 words cover attributes 0..95, enough for every NFSv4.2 attribute.
MAX_BITMAP_WORDS: Final = 4


class Op(enum.IntEnum):
    """nfs_opnum4 (RFC 5662)."""

    ACCESS = 3
    CLOSE = 4
    COMMIT = 5
    CREATE = 6
    DELEGPURGE = 7
    DELEGRETURN = 8
    GETATTR = 9
    GETFH = 10
    LINK = 11
    LOCK = 12
    LOCKT = 13
    LOCKU = 14
    LOOKUP = 15
    LOOKUPP = 16
    NVERIFY = 17
    OPEN = 18
    OPENATTR = 19
    OPEN_CONFIRM = 20  # NFSv4.0 only: MUST NOT be used in 4.1
    OPEN_DOWNGRADE = 21
    PUTFH = 22
    PUTPUBFH = 23
    PUTROOTFH = 24
    READ = 25
    READDIR = 26
    READLINK = 27
    REMOVE = 28
    RENAME = 29
    RENEW = 30  # 4.0 only
    RESTOREFH = 31
    SAVEFH = 32
    SECINFO = 33
    SETATTR = 34
    SETCLIENTID = 35  # 4.0 only
    SETCLIENTID_CONFIRM = 36  # 4.0 only
    VERIFY = 37
    WRITE = 38
    RELEASE_LOCKOWNER = 39  # 4.0 only
    BACKCHANNEL_CTL = 40
    BIND_CONN_TO_SESSION = 41
    EXCHANGE_ID = 42
    CREATE_SESSION = 43
    DESTROY_SESSION = 44
    FREE_STATEID = 45
    GET_DIR_DELEGATION = 46
    GETDEVICEINFO = 47
    GETDEVICELIST = 48
    LAYOUTCOMMIT = 49
    LAYOUTGET = 50
    LAYOUTRETURN = 51
    SECINFO_NO_NAME = 52
    SEQUENCE = 53
    SET_SSV = 54
    TEST_STATEID = 55
    WANT_DELEGATION = 56
    DESTROY_CLIENTID = 57
    RECLAIM_COMPLETE = 58
    ILLEGAL = 10044


class Stat(enum.IntEnum):
    """nfsstat4 (RFC 8881 §15.1)."""

    OK = 0
    PERM = 1
    NOENT = 2
    IO = 5
    NXIO = 6
    ACCESS = 13
    EXIST = 17
    XDEV = 18
    NOTDIR = 20
    ISDIR = 21
    INVAL = 22
    FBIG = 27
    NOSPC = 28
    ROFS = 30
    MLINK = 31
    NAMETOOLONG = 63
    NOTEMPTY = 66
    DQUOT = 69
    STALE = 70
    BADHANDLE = 10001
    BAD_COOKIE = 10003
    NOTSUPP = 10004
    TOOSMALL = 10005
    SERVERFAULT = 10006
    BADTYPE = 10007
    DELAY = 10008
    SAME = 10009
    DENIED = 10010
    EXPIRED = 10011
    LOCKED = 10012
    GRACE = 10013
    FHEXPIRED = 10014
    SHARE_DENIED = 10015
    WRONGSEC = 10016
    CLID_INUSE = 10017
    RESOURCE = 10018
    MOVED = 10019
    NOFILEHANDLE = 10020
    MINOR_VERS_MISMATCH = 10021
    STALE_CLIENTID = 10022
    STALE_STATEID = 10023
    OLD_STATEID = 10024
    BAD_STATEID = 10025
    BAD_SEQID = 10026
    NOT_SAME = 10027
    LOCK_RANGE = 10028
    SYMLINK = 10029
    RESTOREFH = 10030
    LEASE_MOVED = 10031
    ATTRNOTSUPP = 10032
    NO_GRACE = 10033
    RECLAIM_BAD = 10034
    RECLAIM_CONFLICT = 10035
    BADXDR = 10036
    LOCKS_HELD = 10037
    OPENMODE = 10038
    BADOWNER = 10039
    BADCHAR = 10040
    BADNAME = 10041
    BAD_RANGE = 10042
    LOCK_NOTSUPP = 10043
    OP_ILLEGAL = 10044
    DEADLOCK = 10045
    FILE_OPEN = 10046
    ADMIN_REVOKED = 10047
    CB_PATH_DOWN = 10048
    BADIOMODE = 10049
    BADLAYOUT = 10050
    BAD_SESSION_DIGEST = 10051
    BADSESSION = 10052
    BADSLOT = 10053
    COMPLETE_ALREADY = 10054
    CONN_NOT_BOUND_TO_SESSION = 10055
    DELEG_ALREADY_WANTED = 10056
    BACK_CHAN_BUSY = 10057
    LAYOUTTRYLATER = 10058
    LAYOUTUNAVAILABLE = 10059
    NOMATCHING_LAYOUT = 10060
    RECALLCONFLICT = 10061
    UNKNOWN_LAYOUTTYPE = 10062
    SEQ_MISORDERED = 10063
    SEQUENCE_POS = 10064
    REQ_TOO_BIG = 10065
    REP_TOO_BIG = 10066
    REP_TOO_BIG_TO_CACHE = 10067
    RETRY_UNCACHED_REP = 10068
    UNSAFE_COMPOUND = 10069
    TOO_MANY_OPS = 10070
    OP_NOT_IN_SESSION = 10071
    HASH_ALG_UNSUPP = 10072
    CLIENTID_BUSY = 10074
    PNFS_IO_HOLE = 10075
    SEQ_FALSE_RETRY = 10076
    BAD_HIGH_SLOT = 10077
    DEADSESSION = 10078
    ENCR_ALG_UNSUPP = 10079
    PNFS_NO_LAYOUT = 10080
    NOT_ONLY_OP = 10081
    WRONG_CRED = 10082
    WRONG_TYPE = 10083
    DIRDELEG_UNAVAIL = 10084
    REJECT_DELEG = 10085
    RETURNCONFLICT = 10086
    DELEG_REVOKED = 10087


#: One line per status for logs and the client's exceptions.
STAT_TEXT: Final[dict[int, str]] = {
    Stat.OK: "success",
    Stat.PERM: "caller is not the owner / not privileged",
    Stat.NOENT: "no such file or directory",
    Stat.IO: "I/O error on the server",
    Stat.NXIO: "no such device",
    Stat.ACCESS: "permission denied (mode bits, ACL or the export's client rules)",
    Stat.EXIST: "file exists",
    Stat.XDEV: "operation across file systems",
    Stat.NOTDIR: "not a directory",
    Stat.ISDIR: "is a directory",
    Stat.INVAL: "invalid argument",
    Stat.FBIG: "file too large",
    Stat.NOSPC: "no space left on the server's file system",
    Stat.ROFS: "read-only export",
    Stat.MLINK: "too many hard links",
    Stat.NAMETOOLONG: "name longer than maxname",
    Stat.NOTEMPTY: "directory not empty",
    Stat.DQUOT: "quota exceeded",
    Stat.STALE: "file handle of a removed file or an export no longer served",
    Stat.BADHANDLE: "file handle not issued by this server (forged, altered or truncated)",
    Stat.BAD_COOKIE: "READDIR cookie no longer valid",
    Stat.NOTSUPP: "operation or feature not supported by this server",
    Stat.TOOSMALL: "buffer or limit too small for the reply",
    Stat.SERVERFAULT: "unexpected failure inside the server (see the server log)",
    Stat.BADTYPE: "object type not supported",
    Stat.DELAY: "try again later",
    Stat.SAME: "NVERIFY: attributes are the same",
    Stat.DENIED: "lock denied",
    Stat.EXPIRED: "lease expired",
    Stat.LOCKED: "I/O conflicts with a lock",
    Stat.GRACE: "server in grace period: only reclaims allowed",
    Stat.FHEXPIRED: "volatile file handle expired",
    Stat.SHARE_DENIED: "share reservation conflict",
    Stat.WRONGSEC: "security flavor not allowed for this export (use SECINFO)",
    Stat.CLID_INUSE: "client owner already registered by another principal",
    Stat.RESOURCE: "server resource limit",
    Stat.MOVED: "file system moved",
    Stat.NOFILEHANDLE: "no current file handle",
    Stat.MINOR_VERS_MISMATCH: "NFSv4 minor version not served (this server speaks 4.1)",
    Stat.STALE_CLIENTID: "client id unknown (server restarted or client expired)",
    Stat.STALE_STATEID: "stateid from an earlier server instance",
    Stat.OLD_STATEID: "stateid seqid is old",
    Stat.BAD_STATEID: "stateid unknown",
    Stat.BAD_SEQID: "bad sequence id",
    Stat.NOT_SAME: "VERIFY: attributes differ / EXCHANGE_ID update with a changed verifier",
    Stat.LOCK_RANGE: "lock range not supported",
    Stat.SYMLINK: "object is a symbolic link",
    Stat.RESTOREFH: "no saved file handle",
    Stat.LEASE_MOVED: "lease moved",
    Stat.ATTRNOTSUPP: "attribute not supported",
    Stat.NO_GRACE: "reclaim outside the grace period",
    Stat.RECLAIM_BAD: "reclaim does not match earlier state",
    Stat.RECLAIM_CONFLICT: "reclaim conflicts",
    Stat.BADXDR: "arguments could not be decoded",
    Stat.LOCKS_HELD: "locks still held",
    Stat.OPENMODE: "operation not allowed by the open mode",
    Stat.BADOWNER: "owner string could not be mapped",
    Stat.BADCHAR: "invalid character in a name",
    Stat.BADNAME: "name not allowed ('.', '..', '/' or NUL inside)",
    Stat.BAD_RANGE: "byte range not valid",
    Stat.LOCK_NOTSUPP: "lock type not supported",
    Stat.OP_ILLEGAL: "unknown operation number",
    Stat.DEADLOCK: "lock deadlock",
    Stat.FILE_OPEN: "file is open",
    Stat.ADMIN_REVOKED: "state revoked by the administrator",
    Stat.CB_PATH_DOWN: "callback path down",
    Stat.BADIOMODE: "bad layout I/O mode",
    Stat.BADLAYOUT: "bad layout",
    Stat.BAD_SESSION_DIGEST: "bad session digest",
    Stat.BADSESSION: "session unknown (destroyed, or server restarted)",
    Stat.BADSLOT: "slot id beyond the session's slot table",
    Stat.COMPLETE_ALREADY: "RECLAIM_COMPLETE already done",
    Stat.CONN_NOT_BOUND_TO_SESSION: "connection not bound to the session",
    Stat.DELEG_ALREADY_WANTED: "delegation already wanted",
    Stat.BACK_CHAN_BUSY: "backchannel busy",
    Stat.LAYOUTTRYLATER: "layout try later",
    Stat.LAYOUTUNAVAILABLE: "layout unavailable",
    Stat.NOMATCHING_LAYOUT: "no matching layout",
    Stat.RECALLCONFLICT: "recall conflict",
    Stat.UNKNOWN_LAYOUTTYPE: "unknown layout type",
    Stat.SEQ_MISORDERED: "slot sequence id neither the last one nor the next",
    Stat.SEQUENCE_POS: "SEQUENCE not the first operation",
    Stat.REQ_TOO_BIG: "request larger than the session's ca_maxrequestsize",
    Stat.REP_TOO_BIG: "reply would exceed the session's ca_maxresponsesize",
    Stat.REP_TOO_BIG_TO_CACHE: "reply would exceed ca_maxresponsesize_cached",
    Stat.RETRY_UNCACHED_REP: "retry of a request whose reply was not cached",
    Stat.UNSAFE_COMPOUND: "unsafe compound",
    Stat.TOO_MANY_OPS: "more operations than the session's ca_maxoperations",
    Stat.OP_NOT_IN_SESSION: "operation requires a SEQUENCE first",
    Stat.HASH_ALG_UNSUPP: "hash algorithm not supported",
    Stat.CLIENTID_BUSY: "client id has sessions",
    Stat.PNFS_IO_HOLE: "pNFS I/O hole",
    Stat.SEQ_FALSE_RETRY: "retry with a different request on the same slot and sequence id",
    Stat.BAD_HIGH_SLOT: "highest slot id out of range",
    Stat.DEADSESSION: "session is being destroyed",
    Stat.ENCR_ALG_UNSUPP: "encryption algorithm not supported",
    Stat.PNFS_NO_LAYOUT: "no pNFS layout",
    Stat.NOT_ONLY_OP: "operation must be the only one in the COMPOUND",
    Stat.WRONG_CRED: "credential differs from the one that created the state",
    Stat.WRONG_TYPE: "wrong object type",
    Stat.DIRDELEG_UNAVAIL: "directory delegation unavailable",
    Stat.REJECT_DELEG: "delegation rejected",
    Stat.RETURNCONFLICT: "return conflict",
    Stat.DELEG_REVOKED: "delegation revoked",
}


def stat_name(status: int) -> str:
    """The short name of a status (``BADXDR``), as log summaries count them."""
    try:
        return Stat(status).name
    except ValueError:
        return f"status {status}"


def stat_text(status: int) -> str:
    try:
        name = Stat(status).name
    except ValueError:
        return f"status {status}"
    return f"NFS4ERR_{name} ({STAT_TEXT.get(status, '')})" if status else "NFS4_OK"


class Attr(enum.IntEnum):
    """fattr4 attribute numbers (RFC 8881 §5.8)."""

    SUPPORTED_ATTRS = 0
    TYPE = 1
    FH_EXPIRE_TYPE = 2
    CHANGE = 3
    SIZE = 4
    LINK_SUPPORT = 5
    SYMLINK_SUPPORT = 6
    NAMED_ATTR = 7
    FSID = 8
    UNIQUE_HANDLES = 9
    LEASE_TIME = 10
    RDATTR_ERROR = 11
    ACL = 12
    ACLSUPPORT = 13
    ARCHIVE = 14
    CANSETTIME = 15
    CASE_INSENSITIVE = 16
    CASE_PRESERVING = 17
    CHOWN_RESTRICTED = 18
    FILEHANDLE = 19
    FILEID = 20
    FILES_AVAIL = 21
    FILES_FREE = 22
    FILES_TOTAL = 23
    FS_LOCATIONS = 24
    HIDDEN = 25
    HOMOGENEOUS = 26
    MAXFILESIZE = 27
    MAXLINK = 28
    MAXNAME = 29
    MAXREAD = 30
    MAXWRITE = 31
    MIMETYPE = 32
    MODE = 33
    NO_TRUNC = 34
    NUMLINKS = 35
    OWNER = 36
    OWNER_GROUP = 37
    QUOTA_AVAIL_HARD = 38
    QUOTA_AVAIL_SOFT = 39
    QUOTA_USED = 40
    RAWDEV = 41
    SPACE_AVAIL = 42
    SPACE_FREE = 43
    SPACE_TOTAL = 44
    SPACE_USED = 45
    SYSTEM = 46
    TIME_ACCESS = 47
    TIME_ACCESS_SET = 48
    TIME_BACKUP = 49
    TIME_CREATE = 50
    TIME_DELTA = 51
    TIME_METADATA = 52
    TIME_MODIFY = 53
    TIME_MODIFY_SET = 54
    MOUNTED_ON_FILEID = 55
    DIR_NOTIF_DELAY = 56
    DIRENT_NOTIF_DELAY = 57
    DACL = 58
    SACL = 59
    CHANGE_POLICY = 60
    FS_STATUS = 61
    FS_LAYOUT_TYPE = 62
    LAYOUT_HINT = 63
    LAYOUT_TYPE = 64
    LAYOUT_BLKSIZE = 65
    LAYOUT_ALIGNMENT = 66
    FS_LOCATIONS_INFO = 67
    MDSTHRESHOLD = 68
    RETENTION_GET = 69
    RETENTION_SET = 70
    RETENTEVT_GET = 71
    RETENTEVT_SET = 72
    RETENTION_HOLD = 73
    MODE_SET_MASKED = 74
    SUPPATTR_EXCLCREAT = 75
    FS_CHARSET_CAP = 76


class FType(enum.IntEnum):
    """nfs_ftype4."""

    REG = 1
    DIR = 2
    BLK = 3
    CHR = 4
    LNK = 5
    SOCK = 6
    FIFO = 7
    ATTRDIR = 8
    NAMEDATTR = 9


class FhExpire(enum.IntFlag):
    PERSISTENT = 0
    NOEXPIRE_WITH_OPEN = 1
    VOLATILE_ANY = 2
    VOL_MIGRATION = 4
    VOL_RENAME = 8


class Access4(enum.IntFlag):
    READ = 0x01
    LOOKUP = 0x02
    MODIFY = 0x04
    EXTEND = 0x08
    DELETE = 0x10
    EXECUTE = 0x20


ACCESS4_ALL: Final = 0x3F


class ExchgIdFlag(enum.IntFlag):
    SUPP_MOVED_REFER = 0x00000001
    SUPP_MOVED_MIGR = 0x00000002
    BIND_PRINC_STATEID = 0x00000100
    USE_NON_PNFS = 0x00010000
    USE_PNFS_MDS = 0x00020000
    USE_PNFS_DS = 0x00040000
    MASK_PNFS = 0x00070000
    UPD_CONFIRMED_REC_A = 0x40000000
    CONFIRMED_R = 0x80000000


#: Flags a client may send in eia_flags (RFC 8881 §18.35.3); others -> NFS4ERR_INVAL.
EXCHGID_CLIENT_FLAGS: Final = (
    ExchgIdFlag.SUPP_MOVED_REFER | ExchgIdFlag.SUPP_MOVED_MIGR | ExchgIdFlag.BIND_PRINC_STATEID
    | ExchgIdFlag.MASK_PNFS | ExchgIdFlag.UPD_CONFIRMED_REC_A
)


class StateProtect(enum.IntEnum):
    NONE = 0
    MACH_CRED = 1
    SSV = 2


class CreateSessionFlag(enum.IntFlag):
    PERSIST = 0x1
    CONN_BACK_CHAN = 0x2
    CONN_RDMA = 0x4


class SeqStatus(enum.IntFlag):
    CB_PATH_DOWN = 0x1
    CB_GSS_CONTEXTS_EXPIRING = 0x2
    CB_GSS_CONTEXTS_EXPIRED = 0x4
    EXPIRED_ALL_STATE_REVOKED = 0x8
    EXPIRED_SOME_STATE_REVOKED = 0x10
    ADMIN_STATE_REVOKED = 0x20
    RECALLABLE_STATE_REVOKED = 0x40
    LEASE_MOVED = 0x80
    RESTART_RECLAIM_NEEDED = 0x100
    CB_PATH_DOWN_SESSION = 0x200
    BACKCHANNEL_FAULT = 0x400
    DEVID_CHANGED = 0x800
    DEVID_DELETED = 0x1000


class ChannelDirFromClient(enum.IntEnum):
    FORE = 0x1
    BACK = 0x2
    FORE_OR_BOTH = 0x3
    BACK_OR_BOTH = 0x7


class ChannelDirFromServer(enum.IntEnum):
    FORE = 0x1
    BACK = 0x2
    BOTH = 0x3


class SecinfoStyle(enum.IntEnum):
    CURRENT_FH = 0
    PARENT = 1


#: RPCSEC_GSS flavor number in a secinfo4 entry (RFC 5531 / RFC 2203).
RPCSEC_GSS_FLAVOR: Final = 6
