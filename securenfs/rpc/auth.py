"""Caller identity and the authentication-flavor interface.

Every call that reaches a program carries an :class:`Authenticated`: the caller's
:class:`Credential` (flavor, AUTH_SYS ids or the authenticated Kerberos principal), the
(unwrapped) procedure arguments, the reply verifier and, for RPCSEC_GSS integrity and
privacy, a function that protects the reply body.

A flavor handler (AUTH_NONE and AUTH_SYS here, RPCSEC_GSS in ``securenfs.rpcsec_gss``)
turns an :class:`~securenfs.rpc.message.RpcCall` into one of:

* :class:`Authenticated` -- go on to the program;
* :class:`ControlReply` -- the handler answered the call itself (RPCSEC_GSS INIT/DESTROY);

or raises :class:`AuthReject` (MSG_DENIED/AUTH_ERROR), :class:`AuthDrop` (no reply at all,
RFC 2203 §5.3.3.1) or :class:`GarbageArgs`.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from securenfs.rpc.constants import (
    AUTH_STAT_TEXT,
    AUTH_SYS_MAX_GIDS,
    AUTH_SYS_MAX_MACHINENAME,
    AuthFlavor,
    AuthStat,
)
from securenfs.rpc.message import RpcCall
from securenfs.xdr import Packer, XdrError

Buffers = Sequence[bytes | bytearray | memoryview]


@dataclass(slots=True, frozen=True)
class Principal:
    """An authenticated Kerberos principal, e.g. ``alice@EXAMPLE.COM`` or ``nfs/host@REALM``."""

    name: str  # without the realm, components joined by '/'
    realm: str

    def __str__(self) -> str:
        return f"{self.name}@{self.realm}"

    @property
    def is_machine(self) -> bool:
        first = self.name.split("/", 1)[0]
        return ("/" in self.name and first in ("nfs", "host", "root")) or self.name.endswith("$")


@dataclass(slots=True)
class Credential:
    """Who is calling and how they proved it.

    ``pseudo_flavor`` is the flavor the security policy sees: 0 AUTH_NONE, 1 AUTH_SYS, or
    the RFC 2623 pseudo-flavors 390003 krb5, 390004 krb5i, 390005 krb5p.
    """

    flavor: int
    pseudo_flavor: int
    uid: int | None = None
    gid: int | None = None
    gids: tuple[int, ...] = ()
    machinename: str | None = None
    principal: Principal | None = None
    #: RPCSEC_GSS service: 1 none, 2 integrity, 3 privacy (RFC 2203 §5).
    gss_service: int | None = None
    #: Opaque reference to the security context (RPCSEC_GSS), for logging and state binding.
    context: object | None = None

    def describe(self) -> str:
        if self.principal is not None:
            return f"{self.principal} ({flavor_name(self.pseudo_flavor)})"
        if self.flavor == AuthFlavor.AUTH_SYS:
            return f"sys uid={self.uid} gid={self.gid} host={self.machinename!r}"
        return flavor_name(self.pseudo_flavor)


ReplyProtector = Callable[[Buffers], Awaitable[Buffers]]


@dataclass(slots=True)
class Authenticated:
    cred: Credential
    args: memoryview
    verf_flavor: int = 0
    verf_body: bytes = b""
    #: RPCSEC_GSS integrity/privacy: turns the results into rpc_gss_integ_data/priv_data.
    protect_reply: ReplyProtector | None = None


@dataclass(slots=True)
class ControlReply:
    """A reply the flavor handler produced itself (accept_stat SUCCESS)."""

    body: bytes
    verf_flavor: int = 0
    verf_body: bytes = b""


class AuthReject(Exception):
    def __init__(self, stat: AuthStat, reason: str):
        super().__init__(f"{AUTH_STAT_TEXT.get(stat, stat)}: {reason}")
        self.stat = stat
        self.reason = reason


class AuthDrop(Exception):
    """Discard the call without a reply (RFC 2203 §5.3.3.1: duplicates, below the window)."""


class GarbageArgs(Exception):
    """The arguments cannot be decoded (accept_stat GARBAGE_ARGS).

    An accepted reply carries a verifier; RPCSEC_GSS (RFC 2203 §5.3.3.2) passes the MIC of
    the seq_num here so clients that check every accepted reply's verifier accept it.
    """

    def __init__(self, reason: object = "", verf_flavor: int = 0, verf_body: bytes = b""):
        super().__init__(reason)
        self.verf_flavor = verf_flavor
        self.verf_body = verf_body


class FlavorHandler(Protocol):
    async def authenticate(self, call: RpcCall) -> Authenticated | ControlReply: ...


#: Security flavor names used in the configuration and their numbers on the wire: the RPC
#: flavors (RFC 5531) and the Kerberos V5 pseudo-flavors of RFC 2623 §2.
PSEUDO_FLAVORS: dict[str, int] = {
    "none": 0,
    "sys": 1,
    "krb5": 390003,
    "krb5i": 390004,
    "krb5p": 390005,
}
_FLAVOR_NAMES = {v: k for k, v in PSEUDO_FLAVORS.items()}
#: The Kerberos V5 flavors, strongest first: the default of an export's ``sec``.
KERBEROS_SEC: Final = ("krb5p", "krb5i", "krb5")
#: The flavors an export may list, strongest first (SECINFO's preference order).
FLAVORS: Final = (*KERBEROS_SEC, "sys")
#: The flavors that need Kerberos.
KERBEROS_FLAVORS: Final = frozenset(KERBEROS_SEC)


def flavor_name(pseudo_flavor: int) -> str:
    return _FLAVOR_NAMES.get(pseudo_flavor, str(pseudo_flavor))


# -- AUTH_SYS (RFC 5531 Appendix A) ----------------------------------------------------------


@dataclass(slots=True)
class AuthSysParms:
    stamp: int
    machinename: str
    uid: int
    gid: int
    gids: tuple[int, ...] = field(default_factory=tuple)


_U32X2 = struct.Struct(">II")
_U32X3 = struct.Struct(">III")


def decode_auth_sys(body: memoryview) -> AuthSysParms:
    """Decode an authsys_parms body; the body must be consumed exactly (RFC 5531 Appendix A)."""
    n = len(body)
    if n < 20:
        raise XdrError("truncated AUTH_SYS credential")
    stamp, nlen = _U32X2.unpack_from(body, 0)
    if nlen > AUTH_SYS_MAX_MACHINENAME:
        raise XdrError(f"machine name of {nlen} bytes exceeds the limit of {AUTH_SYS_MAX_MACHINENAME}")
    off = 8 + nlen + (-nlen & 3)
    if off + 12 > n:
        raise XdrError("truncated AUTH_SYS credential")
    uid, gid, ngids = _U32X3.unpack_from(body, off)
    if ngids > AUTH_SYS_MAX_GIDS:
        raise XdrError(f"{ngids} supplementary groups exceed the limit of {AUTH_SYS_MAX_GIDS}")
    end = off + 12 + 4 * ngids
    if end != n:
        raise XdrError("AUTH_SYS credential length does not match its contents")
    gids = struct.unpack_from(f">{ngids}I", body, off + 12) if ngids else ()
    return AuthSysParms(stamp, str(body[8 : 8 + nlen], "utf-8", "replace"), uid, gid, gids)


def encode_auth_sys(p: AuthSysParms) -> bytes:
    pk = Packer()
    pk.u32(p.stamp)
    pk.string(p.machinename.encode())
    pk.u32(p.uid)
    pk.u32(p.gid)
    pk.u32_array(list(p.gids))
    return pk.getvalue()


def authenticate_sys(call: RpcCall) -> Authenticated:
    """AUTH_SYS: decode the parameters; the verifier must be AUTH_NONE."""
    try:
        p = decode_auth_sys(call.cred_body)
    except XdrError as exc:
        raise AuthReject(AuthStat.AUTH_BADCRED, f"malformed AUTH_SYS credential: {exc}") from None
    if call.verf_flavor != AuthFlavor.AUTH_NONE:
        raise AuthReject(AuthStat.AUTH_BADVERF, f"AUTH_SYS with verifier flavor {call.verf_flavor}")
    cred = Credential(
        AuthFlavor.AUTH_SYS, 1, uid=p.uid, gid=p.gid, gids=p.gids, machinename=p.machinename
    )
    return Authenticated(cred, call.args)


def authenticate_none(call: RpcCall) -> Authenticated:
    if call.cred_body or call.verf_flavor != AuthFlavor.AUTH_NONE:
        # RFC 5531 §10.1: AUTH_NONE has no body.
        if call.cred_body:
            raise AuthReject(AuthStat.AUTH_BADCRED, "AUTH_NONE credential with a body")
        raise AuthReject(AuthStat.AUTH_BADVERF, f"AUTH_NONE with verifier flavor {call.verf_flavor}")
    return Authenticated(Credential(AuthFlavor.AUTH_NONE, 0), call.args)


class SimpleFlavor:
    """Adapts the synchronous AUTH_NONE / AUTH_SYS functions to :class:`FlavorHandler`."""

    def __init__(self, fn: Callable[[RpcCall], Authenticated]):
        self._fn = fn

    def check(self, call: RpcCall) -> Authenticated:
        return self._fn(call)

    async def authenticate(self, call: RpcCall) -> Authenticated | ControlReply:
        return self._fn(call)
