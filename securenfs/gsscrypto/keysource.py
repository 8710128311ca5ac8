"""Getting a context's key out of python-gssapi (MIT krb5) without disturbing it.

MIT krb5 1.20 facts this relies on (checked by tests/integration/test_gsscrypto_mit.py):

* ``gss_krb5_export_lucid_sec_context`` (``gssapi.raw.krb5_export_lucid_sec_context``)
  hands out the keys and sequence numbers but then *deletes the GSS context*: any later
  ``gss_wrap`` fails with "No context has been established".  It cannot be used while the
  context must keep serving the fallback path.
* ``gss_inquire_sec_context_by_oid`` with GSS_C_INQ_SSPI_SESSION_KEY
  (1.2.840.113554.1.2.2.5.5) returns the key the context protects messages with (the
  acceptor subkey when the acceptor asserted one, as MIT always does for mutual
  authentication, else the initiator's subkey) and its enctype as the OID
  1.2.840.113554.1.2.2.4.<enctype>.  It leaves the context untouched.

The inquiry says nothing of the send sequence number or of whether the key is the
acceptor subkey, so one MIC over the empty string is made through the GSS library (a
"probe"): its header gives the flags and the sequence number, and recomputing its
checksum proves the key is right before the fast path is used.  The probe spends one
sequence number of the GSS context; from then on this side sends with the fast path only.
A caller with a MIC to send anyway has the probe made over that message and sends it, so
the peer sees no gap in the sequence numbers (``choose_fast_path(ctx, probe_message)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from securenfs.gsscrypto.enctypes import PROFILES, profile_for
from securenfs.gsscrypto.tokens import HEADER_BYTES, TOK_ID_MIC, FastContext, TokenFlags

if TYPE_CHECKING:
    from gssapi import SecurityContext

log = logging.getLogger("securenfs.gsscrypto")

KRB5_MECH_OID = "1.2.840.113554.1.2.2"
INQ_SSPI_SESSION_KEY_OID = "1.2.840.113554.1.2.2.5.5"
ENCTYPE_OID_PREFIX = "1.2.840.113554.1.2.2.4."


class KeyUnavailable(Exception):
    """The context's key could not be obtained; the reason is the message.

    ``probe`` is the probe MIC when the GSS library already made it: it is a valid token
    of the context and the caller may still send it.
    """

    def __init__(self, reason: str, enctype: int | None = None, probe: bytes | None = None) -> None:
        super().__init__(reason)
        self.enctype = enctype
        self.probe = probe


@dataclass(slots=True, frozen=True)
class SessionKey:
    enctype: int
    key: bytes


def inquire_session_key(ctx: SecurityContext) -> SessionKey:
    """The key and enctype MIT protects this context's messages with."""
    from gssapi.raw import OID, inquire_sec_context_by_oid
    from gssapi.raw.misc import GSSError

    try:
        res = inquire_sec_context_by_oid(ctx, OID.from_int_seq(INQ_SSPI_SESSION_KEY_OID))
    except GSSError as exc:
        raise KeyUnavailable(f"session key inquiry failed: {exc.gen_message()}") from exc
    except (TypeError, NotImplementedError) as exc:
        raise KeyUnavailable(f"session key inquiry unavailable: {exc}") from exc
    if len(res) < 2:
        raise KeyUnavailable("session key inquiry returned no enctype")
    oid = OID(elements=bytes(res[1])).dotted_form
    if not oid.startswith(ENCTYPE_OID_PREFIX):
        raise KeyUnavailable(f"session key inquiry returned an unknown key type OID {oid}")
    try:
        enctype = int(oid[len(ENCTYPE_OID_PREFIX) :])
    except ValueError as exc:
        raise KeyUnavailable(f"malformed enctype OID {oid}") from exc
    return SessionKey(enctype, bytes(res[0]))


@dataclass(slots=True, frozen=True)
class FastPathChoice:
    """What :func:`choose_fast_path` decided for one context.

    ``fast`` is None when the context must stay on the GSS library; ``reason`` then says
    why.  ``enctype`` is the context's IANA enctype number when the key inquiry told it.
    """

    fast: FastContext | None
    enctype: int | None
    reason: str
    #: The probe: the GSS library's MIC over the probe message, if it was made (also when
    #: the fast path was refused afterwards).  Sending it as the context's next token keeps
    #: the peer's view of this side's sequence numbers free of gaps.
    probe: bytes | None = None


def choose_fast_path(ctx: SecurityContext, probe_message: bytes = b"") -> FastPathChoice:
    """Try to build a :class:`FastContext` for ``ctx``; never raises for a usable context.

    The probe MIC is made over ``probe_message``.  A caller that has a MIC to send anyway
    (RPCSEC_GSS: the verifier over seq_window ending context creation, RFC 2203 §5.2.3.1)
    passes that message and sends ``probe``; then no sequence number is skipped, which
    matters to peers that asked for GSS sequence detection.  Whenever ``probe`` is set,
    the context's send sequence has moved on; with ``fast`` set, every later token this
    side sends must come from it.
    """
    try:
        fast, probe = _build(ctx, probe_message)
    except KeyUnavailable as exc:
        log.info("GSS fast path not used for this context: %s", exc)
        return FastPathChoice(None, exc.enctype, str(exc), exc.probe)
    return FastPathChoice(fast, fast.enctype_number, "", probe)


def session_enctype(ctx: SecurityContext) -> int | None:
    """The enctype of ``ctx``'s message key, or None if the inquiry fails.

    Only the enctype is kept; the key the inquiry returns is dropped at once.
    """
    try:
        return inquire_session_key(ctx).enctype
    except KeyUnavailable:
        return None


def fast_context_from_gss(ctx: SecurityContext) -> FastContext | None:
    """Build a :class:`FastContext` for ``ctx`` or return None, logging why not."""
    return choose_fast_path(ctx).fast


def _build(ctx: SecurityContext, probe_message: bytes) -> tuple[FastContext, bytes]:
    from gssapi.raw import get_mic
    from gssapi.raw.misc import GSSError

    if not getattr(ctx, "complete", False):
        raise KeyUnavailable("context is not established")
    mech = getattr(ctx, "mech", None)
    mech_oid = getattr(mech, "dotted_form", None)
    if mech_oid != KRB5_MECH_OID:
        raise KeyUnavailable(f"mechanism {mech_oid} is not Kerberos 5")
    sk = inquire_session_key(ctx)
    profile = profile_for(sk.enctype)
    if profile is None:
        supported = ", ".join(p.name for p in PROFILES.values())
        raise KeyUnavailable(f"enctype {sk.enctype} is not one of {supported}", sk.enctype)
    if len(sk.key) != profile.key_bytes:
        raise KeyUnavailable(f"{profile.name} key has {len(sk.key)} octets", sk.enctype)
    initiator = bool(ctx.locally_initiated)
    try:
        probe = bytes(get_mic(ctx, probe_message))
    except GSSError as exc:
        raise KeyUnavailable(f"probe MIC failed: {exc.gen_message()}", sk.enctype) from exc
    if len(probe) != HEADER_BYTES + profile.mac_bytes or probe[:2] != TOK_ID_MIC:
        raise KeyUnavailable("probe MIC is not an RFC 4121 MIC token", sk.enctype, probe)
    flags = probe[2]
    if bool(flags & TokenFlags.SENT_BY_ACCEPTOR) == initiator:
        raise KeyUnavailable(
            "probe MIC's SentByAcceptor flag contradicts the context role", sk.enctype, probe
        )
    seq = int.from_bytes(probe[8:16], "big")
    fast = FastContext(
        sk.enctype,
        sk.key,
        initiator=initiator,
        acceptor_subkey=bool(flags & TokenFlags.ACCEPTOR_SUBKEY),
        send_seq=seq + 1,
    )
    if not fast.is_own_mic(probe_message, probe):
        raise KeyUnavailable(
            "keys from the session key inquiry do not reproduce the probe MIC", sk.enctype, probe
        )
    log.debug("GSS fast path enabled: %r", fast)
    return fast, probe
