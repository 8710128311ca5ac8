"""ONC RPC version 2 protocol numbers (RFC 5531), declared once for the whole project."""

from __future__ import annotations

import enum
from typing import Final

RPC_VERSION: Final = 2
#: RFC 5531 §8.2: opaque_auth bodies are at most 400 bytes.
MAX_AUTH_BYTES: Final = 400
#: RFC 5531 Appendix A: machinename<255>, gids<16>.
AUTH_SYS_MAX_MACHINENAME: Final = 255
AUTH_SYS_MAX_GIDS: Final = 16

NFS_PROGRAM: Final = 100003
NFS_V4: Final = 4
NFS_CB_PROGRAM: Final = 0x40000000


class MsgType(enum.IntEnum):
    CALL = 0
    REPLY = 1


class ReplyStat(enum.IntEnum):
    MSG_ACCEPTED = 0
    MSG_DENIED = 1


class AcceptStat(enum.IntEnum):
    SUCCESS = 0
    PROG_UNAVAIL = 1
    PROG_MISMATCH = 2
    PROC_UNAVAIL = 3
    GARBAGE_ARGS = 4
    SYSTEM_ERR = 5


class RejectStat(enum.IntEnum):
    RPC_MISMATCH = 0
    AUTH_ERROR = 1


class AuthStat(enum.IntEnum):
    AUTH_OK = 0
    AUTH_BADCRED = 1
    AUTH_REJECTEDCRED = 2
    AUTH_BADVERF = 3
    AUTH_REJECTEDVERF = 4
    AUTH_TOOWEAK = 5
    AUTH_INVALIDRESP = 6
    AUTH_FAILED = 7
    # RFC 2203 §5.3.3.3
    RPCSEC_GSS_CREDPROBLEM = 13
    RPCSEC_GSS_CTXPROBLEM = 14


class AuthFlavor(enum.IntEnum):
    AUTH_NONE = 0
    AUTH_SYS = 1
    AUTH_SHORT = 2
    AUTH_DH = 3
    RPCSEC_GSS = 6


AUTH_STAT_TEXT: Final = {
    AuthStat.AUTH_OK: "ok",
    AuthStat.AUTH_BADCRED: "bad credential (malformed or unusable)",
    AuthStat.AUTH_REJECTEDCRED: "credential rejected, client must begin a new session",
    AuthStat.AUTH_BADVERF: "bad verifier",
    AuthStat.AUTH_REJECTEDVERF: "verifier expired or replayed",
    AuthStat.AUTH_TOOWEAK: "security flavor too weak for this server",
    AuthStat.AUTH_INVALIDRESP: "bogus response verifier",
    AuthStat.AUTH_FAILED: "authentication failed (reason unknown)",
    AuthStat.RPCSEC_GSS_CREDPROBLEM: "no such GSS context or its credentials expired; refresh them",
    AuthStat.RPCSEC_GSS_CTXPROBLEM: "GSS context problem; establish a new context",
}
