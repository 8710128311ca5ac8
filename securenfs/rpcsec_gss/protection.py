"""Per-context message protection: the four GSS-API per-message calls behind one interface.

RPCSEC_GSS needs only get_mic, verify_mic, wrap (with confidentiality) and unwrap.  Three
implementations exist:

* :class:`GssapiProtection` -- python-gssapi on the accepted context (the default);
* :class:`securenfs.rpcsec_gss.libgss.LibGssProtection` -- the same MIT library through
  ctypes, used for contexts whose initiator asked for replay or sequence detection, because
  python-gssapi turns the resulting supplementary statuses into exceptions and loses the
  unwrapped message (RFC 2203 keeps its own window, §5.3.3.1, and reorders tokens freely);
* :class:`OpenSslProtection` -- the fast path (``securenfs.gsscrypto``): the same RFC 4121
  tokens computed with OpenSSL from the context's session key, chosen per context when
  ``kerberos.fast_path`` is on and the context uses an AES enctype whose key can be had.

:func:`choose_protection` makes the choice once, when the context is established, and says
why in a :class:`ProtectionInfo` (shown by ``securenfs status``).  All implementations may be
called from several threads at once.  The two on MIT's library make one call at a time per
context (MIT's per-message calls update the context without a lock of their own, and both
bindings release the GIL); the fast path holds a lock only to take a sequence number, so
one context's large bodies are protected on as many cores as the worker pool has.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import gssapi
import gssapi.raw as gssraw
from gssapi.raw.exceptions import SupplementaryError
from gssapi.raw.misc import GSSError

from keytabs.enctypes import enctype_name
from securenfs.gsscrypto import (
    BadChecksum,
    BadToken,
    FastContext,
    choose_fast_path,
    session_enctype,
)
from securenfs.rpcsec_gss.constants import GSS_S_BAD_SIG, GSS_S_DEFECTIVE_TOKEN
from securenfs.rpcsec_gss.gsserrors import GssFailure, translate, translate_exception

log = logging.getLogger("securenfs.rpcsec_gss")

Data = bytes | bytearray | memoryview


class ProtectionError(Exception):
    """A per-message operation failed (bad checksum, defective token, expired context...)."""

    def __init__(self, what: str, failure: GssFailure):
        super().__init__(f"{what}: {failure.describe()}")
        self.what = what
        self.failure = failure


class Protection(Protocol):
    #: A short name for logs and the admin view ("gssapi", "libgss", "openssl").
    kind: str

    def get_mic(self, data: Data) -> bytes: ...

    def verify_mic(self, data: Data, mic: Data) -> None:
        """Raise :class:`ProtectionError` unless ``mic`` is a valid MIC of ``data``."""

    def wrap(self, data: Data) -> bytes:
        """A wrap token with confidentiality (RFC 2203 §5.3.2.3 privacy)."""

    def unwrap(self, token: Data) -> bytes | memoryview:
        """The plaintext; raise :class:`ProtectionError` unless it was encrypted."""

    def busy(self) -> bool:
        """True while another thread holds this context (a small call would wait for it)."""


def _supplementary_only(exc: GSSError) -> bool:
    """True when the status carries only supplementary bits (duplicate/old/gap/unseq).

    Those mean the token is authentic but out of the GSS layer's order; RPCSEC_GSS has its
    own window (RFC 2203 §5.3.3.1), so they count as success.
    """
    return isinstance(exc, SupplementaryError) and (exc.maj_code & 0xFFFF0000) == 0


def _b(data: Data) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


class GssapiProtection:
    """python-gssapi on an established context (no replay/sequence flags)."""

    kind = "gssapi"
    __slots__ = ("_lock", "ctx")

    def __init__(self, ctx: gssapi.SecurityContext):
        self.ctx = ctx
        self._lock = threading.Lock()

    def busy(self) -> bool:
        return self._lock.locked()

    def get_mic(self, data: Data) -> bytes:
        try:
            with self._lock:
                return gssraw.get_mic(self.ctx, _b(data))
        except GSSError as exc:
            raise ProtectionError("get_mic", translate_exception(exc, per_message=True)) from None

    def verify_mic(self, data: Data, mic: Data) -> None:
        try:
            with self._lock:
                gssraw.verify_mic(self.ctx, _b(data), _b(mic))
        except GSSError as exc:
            if _supplementary_only(exc):
                return
            raise ProtectionError("verify_mic", translate_exception(exc, per_message=True)) from None

    def wrap(self, data: Data) -> bytes:
        try:
            with self._lock:
                res = gssraw.wrap(self.ctx, _b(data), True)
        except GSSError as exc:
            raise ProtectionError("wrap", translate_exception(exc, per_message=True)) from None
        if not res.encrypted:
            raise ProtectionError("wrap", translate(0xD0000, 0, "confidentiality not available"))
        return res.message

    def unwrap(self, token: Data) -> bytes:
        try:
            with self._lock:
                res = gssraw.unwrap(self.ctx, _b(token))
        except GSSError as exc:
            raise ProtectionError("unwrap", translate_exception(exc, per_message=True)) from None
        if not res.encrypted:
            # RFC 2203 §5.3.2.3: privacy means the body was encrypted, not merely signed.
            raise ProtectionError("unwrap", translate(0xD0000, 0, "token was not encrypted"))
        return res.message


class OpenSslProtection:
    """The OpenSSL fast path on a :class:`securenfs.gsscrypto.FastContext`.

    Every token this side sends comes from the FastContext (its send sequence numbers
    continue after the probe MIC the GSS library made), so the python-gssapi context is not
    used for sending again.  A token that fails to parse or verify raises
    :class:`ProtectionError` with the same GSS status the library would have reported
    (GSS_S_BAD_SIG for a checksum, GSS_S_DEFECTIVE_TOKEN for a broken token), so callers
    reject it exactly as before.  Received sequence numbers are not checked here, as with
    the library paths: RPCSEC_GSS's window does that (RFC 2203 §5.3.3.1).
    """

    kind = "openssl"
    __slots__ = ("fast",)

    def __init__(self, fast: FastContext):
        self.fast = fast

    @staticmethod
    def busy() -> bool:
        return False  # only a sequence number is taken under a lock

    @staticmethod
    def _failure(what: str, exc: BadToken) -> ProtectionError:
        # A checksum that does not match is BAD_SIG in gss_verify_mic/gss_unwrap; anything
        # wrong with the token's shape is DEFECTIVE_TOKEN (RFC 2744 §3.9.1).
        major = GSS_S_BAD_SIG if isinstance(exc, BadChecksum) else GSS_S_DEFECTIVE_TOKEN
        return ProtectionError(what, translate(major, 0, str(exc), per_message=True))

    def get_mic(self, data: Data) -> bytes:
        return self.fast.get_mic(data)

    def verify_mic(self, data: Data, mic: Data) -> None:
        try:
            self.fast.verify_mic(data, mic)
        except BadToken as exc:
            raise self._failure("verify_mic", exc) from None

    def wrap(self, data: Data) -> bytes:
        return self.fast.wrap(data, True)

    def unwrap(self, token: Data) -> memoryview:
        # A view of a buffer of its own: the plaintext (a WRITE's data) is not copied again.
        try:
            message, sealed = self.fast.unwrap_view(token)
        except BadToken as exc:
            raise self._failure("unwrap", exc) from None
        if not sealed:
            # RFC 2203 §5.3.2.3: privacy means the body was encrypted, not merely signed.
            raise ProtectionError("unwrap", translate(0xD0000, 0, "token was not encrypted"))
        return message


def _pieces_len(pieces: Sequence[Data]) -> int:
    n = 0
    for p in pieces:
        n += len(p)
    return n


def wrap_opaque(prot: Protection, pieces: Sequence[Data]) -> list[Data]:
    """``rpc_gss_priv_data`` (RFC 2203 §5.3.2.3) for the concatenation of ``pieces``.

    On the fast path the pieces are sealed where they lie into one buffer that already
    holds the XDR length and padding; MIT's gss_wrap needs them joined first.
    """
    if isinstance(prot, OpenSslProtection):
        return [prot.fast.wrap_opaque(pieces)]
    return wire_opaque(prot.wrap(b"".join(pieces)))


def integ_parts(prot: Protection, pieces: Sequence[Data]) -> list[Data]:
    """``rpc_gss_integ_data`` (RFC 2203 §5.3.2.2) for the concatenation of ``pieces``.

    The fast path MACs the pieces where they lie and the body is sent as those same
    buffers, so a large READ reply is never joined; MIT's gss_get_mic needs one buffer.
    """
    if isinstance(prot, OpenSslProtection):
        n = _pieces_len(pieces)
        mic = prot.fast.get_mic_pieces(pieces)
        out: list[Data] = [n.to_bytes(4, "big"), *pieces]
        if n & 3:
            out.append(bytes(-n & 3))
        return [*out, *wire_opaque(mic)]
    data = b"".join(pieces)
    return [*wire_opaque(data), *wire_opaque(prot.get_mic(data))]


def wire_opaque(data: Data) -> list[Data]:
    """An XDR opaque<> as buffers: length, data, zero padding (RFC 4506 §4.10)."""
    n = len(data)
    if n & 3:
        return [n.to_bytes(4, "big"), data, bytes(-n & 3)]
    return [n.to_bytes(4, "big"), data]


class Engine(enum.Enum):
    """Which code computes a context's per-message tokens."""

    OPENSSL = "openssl"
    MIT = "mit"


@dataclass(slots=True, frozen=True)
class ProtectionInfo:
    """Why a context got the protection it has (for logs, stats and ``securenfs status``)."""

    engine: Engine
    #: The enctype name of the context's message key ("aes256-cts-hmac-sha1-96"), or None.
    enctype: str | None
    #: For MIT: why the fast path was not used; empty for OpenSSL.
    reason: str = ""


#: The reason shown for contexts when ``kerberos.fast_path`` is false.
FAST_PATH_OFF = "kerberos.fast_path is off"


def needs_libgss(ctx: gssapi.SecurityContext) -> bool:
    flags = ctx.actual_flags
    F = gssapi.RequirementFlag
    return F.replay_detection in flags or F.out_of_sequence_detection in flags


def _mit_protection(ctx: gssapi.SecurityContext) -> Protection:
    if needs_libgss(ctx):
        from securenfs.rpcsec_gss.libgss import LibGssProtection

        return LibGssProtection.from_gssapi(ctx)
    return GssapiProtection(ctx)


def _name(enctype: int | None) -> str | None:
    return None if enctype is None else enctype_name(enctype)


@dataclass(slots=True)
class ChosenProtection:
    """The outcome of :func:`choose_protection`."""

    protection: Protection
    info: ProtectionInfo
    #: The MIC over ``first_mic_message`` when it was made while choosing (the fast path's
    #: probe); the caller sends it instead of computing it again.
    first_mic: bytes | None = None


def choose_protection(ctx: gssapi.SecurityContext, fast_path: bool,
                      first_mic_message: bytes = b"") -> ChosenProtection:
    """Choose the implementation for a freshly established context, and say why.

    With ``fast_path`` the OpenSSL path is tried first (:func:`choose_fast_path`); contexts
    with other enctypes, or whose key cannot be obtained, keep MIT's library.  Trying costs
    one MIC made by the library, over ``first_mic_message``: pass the message of the first
    MIC the caller will send (RFC 2203 §5.2.3.1: seq_window) and send ``first_mic``, so the
    peer sees no gap in this side's sequence numbers.  The context must not be used through
    python-gssapi afterwards unless the result is a :class:`GssapiProtection` (it may have
    been exported, or its send sequence taken over).
    """
    if not fast_path:
        # The enctype only, for the admin view; the inquiry leaves the context as it was.
        info = ProtectionInfo(Engine.MIT, _name(session_enctype(ctx)), FAST_PATH_OFF)
        return ChosenProtection(_mit_protection(ctx), info)
    choice = choose_fast_path(ctx, bytes(first_mic_message))
    if choice.fast is not None:
        info = ProtectionInfo(Engine.OPENSSL, choice.fast.enctype)
        return ChosenProtection(OpenSslProtection(choice.fast), info, choice.probe)
    info = ProtectionInfo(Engine.MIT, _name(choice.enctype), choice.reason)
    return ChosenProtection(_mit_protection(ctx), info, choice.probe)


def protection_for(ctx: gssapi.SecurityContext, fast_path: bool = False) -> Protection:
    """:func:`choose_protection` without the explanation."""
    return choose_protection(ctx, fast_path).protection
