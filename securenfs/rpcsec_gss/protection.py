"""Per-context message protection: the four GSS-API per-message calls behind one interface.

RPCSEC_GSS needs only get_mic, verify_mic, wrap (with confidentiality) and unwrap.  Three
implementations exist:

* :class:`GssapiProtection` -- python-gssapi on the accepted context (the default);
* :class:`securenfs.rpcsec_gss.libgss.LibGssProtection` -- the same MIT library through
  ctypes, used for contexts whose initiator asked for replay or sequence detection, because
  python-gssapi turns the resulting supplementary statuses into exceptions and loses the
  unwrapped message (RFC 2203 keeps its own window, §5.3.3.1, and reorders tokens freely);
* a fast path (``securenfs.gsscrypto``) building the same RFC 4121 tokens with OpenSSL,
  chosen per context when ``kerberos.fast_path`` is on and it is installed.

All of them may be called from several threads at once without a lock (no lock is held
across crypto), and release the GIL while they compute.
"""

from __future__ import annotations

import logging
from typing import Protocol

import gssapi
from gssapi.raw.misc import GSSError
import gssapi.raw as gssraw
from gssapi.raw.exceptions import SupplementaryError

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
    #: A short name for logs and the admin view ("gssapi", "libgss", "fast").
    kind: str

    def get_mic(self, data: Data) -> bytes: ...

    def verify_mic(self, data: Data, mic: Data) -> None:
        """Raise :class:`ProtectionError` unless ``mic`` is a valid MIC of ``data``."""

    def wrap(self, data: Data) -> bytes:
        """A wrap token with confidentiality (RFC 2203 §5.3.2.3 privacy)."""

    def unwrap(self, token: Data) -> bytes:
        """The plaintext; raise :class:`ProtectionError` unless it was encrypted."""


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
    __slots__ = ("ctx",)

    def __init__(self, ctx: gssapi.SecurityContext):
        self.ctx = ctx

    def get_mic(self, data: Data) -> bytes:
        try:
            return gssraw.get_mic(self.ctx, _b(data))
        except GSSError as exc:
            raise ProtectionError("get_mic", translate_exception(exc, per_message=True)) from None

    def verify_mic(self, data: Data, mic: Data) -> None:
        try:
            gssraw.verify_mic(self.ctx, _b(data), _b(mic))
        except GSSError as exc:
            if _supplementary_only(exc):
                return
            raise ProtectionError("verify_mic", translate_exception(exc, per_message=True)) from None

    def wrap(self, data: Data) -> bytes:
        try:
            res = gssraw.wrap(self.ctx, _b(data), True)
        except GSSError as exc:
            raise ProtectionError("wrap", translate_exception(exc, per_message=True)) from None
        if not res.encrypted:
            raise ProtectionError("wrap", translate(0xD0000, 0, "confidentiality not available"))
        return res.message

    def unwrap(self, token: Data) -> bytes:
        try:
            res = gssraw.unwrap(self.ctx, _b(token))
        except GSSError as exc:
            raise ProtectionError("unwrap", translate_exception(exc, per_message=True)) from None
        if not res.encrypted:
            # RFC 2203 §5.3.2.3: privacy means the body was encrypted, not merely signed.
            raise ProtectionError("unwrap", translate(0xD0000, 0, "token was not encrypted"))
        return res.message


def needs_libgss(ctx: gssapi.SecurityContext) -> bool:
    flags = ctx.actual_flags
    F = gssapi.RequirementFlag
    return F.replay_detection in flags or F.out_of_sequence_detection in flags


def protection_for(ctx: gssapi.SecurityContext, fast_path: bool = False) -> Protection:
    """Choose the implementation for a freshly established acceptor context.

    The context must not be used through python-gssapi afterwards when the result is not a
    :class:`GssapiProtection` (the context may have been exported).
    """
    if fast_path:
        fast = _try_fast(ctx)
        if fast is not None:
            return fast
    if needs_libgss(ctx):
        from securenfs.rpcsec_gss.libgss import LibGssProtection

        return LibGssProtection.from_gssapi(ctx)
    return GssapiProtection(ctx)


def _try_fast(ctx: gssapi.SecurityContext) -> Protection | None:
    """Hook for the OpenSSL fast path (``securenfs.gsscrypto``).

    Not wired yet: it returns None, so every context uses the MIT library.  When wired, it
    must return an object with the four methods of :class:`Protection` built from ``ctx``
    (``FastContext.from_gss(ctx)``), or None to fall back.
    """
    return None
