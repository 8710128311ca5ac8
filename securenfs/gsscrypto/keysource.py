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
    """The context's key could not be obtained; the reason is the message."""


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


def fast_context_from_gss(ctx: SecurityContext) -> FastContext | None:
    """Build a :class:`FastContext` for ``ctx`` or return None, logging why not."""
    try:
        return _build(ctx)
    except KeyUnavailable as exc:
        log.info("GSS fast path not used for this context: %s", exc)
        return None


def _build(ctx: SecurityContext) -> FastContext:
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
        raise KeyUnavailable(f"enctype {sk.enctype} is not one of {supported}")
    if len(sk.key) != profile.key_bytes:
        raise KeyUnavailable(f"{profile.name} key has {len(sk.key)} octets")
    initiator = bool(ctx.locally_initiated)
    try:
        probe = bytes(get_mic(ctx, b""))
    except GSSError as exc:
        raise KeyUnavailable(f"probe MIC failed: {exc.gen_message()}") from exc
    if len(probe) != HEADER_BYTES + profile.mac_bytes or probe[:2] != TOK_ID_MIC:
        raise KeyUnavailable("probe MIC is not an RFC 4121 MIC token")
    flags = probe[2]
    if bool(flags & TokenFlags.SENT_BY_ACCEPTOR) == initiator:
        raise KeyUnavailable("probe MIC's SentByAcceptor flag contradicts the context role")
    seq = int.from_bytes(probe[8:16], "big")
    fast = FastContext(
        sk.enctype,
        sk.key,
        initiator=initiator,
        acceptor_subkey=bool(flags & TokenFlags.ACCEPTOR_SUBKEY),
        send_seq=seq + 1,
    )
    if not fast.is_own_mic(b"", probe):
        raise KeyUnavailable("keys from the session key inquiry do not reproduce the probe MIC")
    log.debug("GSS fast path enabled: %r", fast)
    return fast
