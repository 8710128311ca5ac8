"""GSS-API failures in words: what failed, the likely cause and what to do.

python-gssapi raises :class:`gssapi.exceptions.GSSError` carrying the major status (the
GSS-API routine error, RFC 2744 §3.9.1) and the mechanism's minor status (an MIT krb5 com_err
code).  Operators see neither number usefully; this module turns both into one line naming the
likely cause (clock skew, stale keytab/kvno, missing principal, unsupported enctype, ...)
and a fix.  Matching is on the minor code first and on MIT's message text second, because MIT
adds details (the principal, the kvno, the enctype) only to the text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

#: MIT com_err table base of the krb5 error table (ERROR_TABLE_BASE_krb5).
_KRB5_BASE: Final = -1765328384


def _krb5(n: int) -> int:
    """An MIT krb5 error code as the unsigned minor status GSS reports."""
    return (_KRB5_BASE + n) & 0xFFFFFFFF


class Cause(enum.Enum):
    CLOCK_SKEW = "clock skew"
    KVNO_MISMATCH = "kvno mismatch (stale keytab)"
    MISSING_PRINCIPAL = "missing principal"
    UNSUPPORTED_ENCTYPE = "unsupported enctype"
    WRONG_KEY = "key mismatch"
    TICKET_EXPIRED = "ticket expired"
    NO_TICKET = "no ticket"
    CONTEXT_EXPIRED = "context expired"
    BAD_TOKEN = "malformed token"
    BAD_SIGNATURE = "bad checksum"
    REPLAY = "replayed token"
    NO_CREDENTIALS = "no acceptor credentials"
    KDC_UNREACHABLE = "KDC unreachable"
    UNKNOWN = "unknown"


_HINTS: Final = {
    Cause.CLOCK_SKEW: "the client's and server's clocks differ by more than the allowed skew "
    "(default 300 s); synchronise both with the KDC (chronyd/ntpd)",
    Cause.KVNO_MISMATCH: "the keytab is older than the key the KDC issues tickets for; re-export "
    "the service key (ktadd / adcli update / ipa-getkeytab) and make sure only one host owns it",
    Cause.MISSING_PRINCIPAL: "the keytab (or the KDC) has no key for the service principal the "
    "client asked for; add nfs/<fqdn>@REALM to the keytab, or list it in kerberos.principals",
    Cause.UNSUPPORTED_ENCTYPE: "the ticket's encryption type has no key in the keytab, or it is "
    "disabled in krb5.conf; re-key with aes256-cts/aes128-cts and re-export the keytab",
    Cause.WRONG_KEY: "the keytab's key differs from the KDC's at the same kvno (password changed "
    "without a kvno bump, or the principal is registered twice); re-export the keytab",
    Cause.TICKET_EXPIRED: "the client's ticket has expired; the client must renew it (kinit)",
    Cause.NO_TICKET: "the client has no Kerberos ticket in its credential cache; get one with "
    "kinit (or point KRB5CCNAME at the cache that holds it)",
    Cause.CONTEXT_EXPIRED: "the security context outlived its ticket; the client must "
    "establish a new one",
    Cause.BAD_TOKEN: "the client sent bytes that are not a valid GSS token (wrong mechanism, "
    "truncated, or corrupted)",
    Cause.BAD_SIGNATURE: "the checksum does not match: the message was modified in transit or "
    "the peer used another key",
    Cause.REPLAY: "the token was seen before (a replay or a retransmission with replay "
    "detection on)",
    Cause.NO_CREDENTIALS: "the acceptor has no usable key: check kerberos.keytab is readable by "
    "the server and holds the configured principals",
    Cause.KDC_UNREACHABLE: "no KDC answered; check krb5.conf and the firewall (TCP/UDP 88)",
    Cause.UNKNOWN: "rerun with KRB5_TRACE=/dev/stderr for the library's own trace",
}

_MINOR_CAUSES: Final = {
    _krb5(37): Cause.CLOCK_SKEW,  # KRB5KRB_AP_ERR_SKEW
    _krb5(44): Cause.KVNO_MISMATCH,  # KRB5KRB_AP_ERR_BADKEYVER
    _krb5(32): Cause.TICKET_EXPIRED,  # KRB5KRB_AP_ERR_TKT_EXPIRED
    _krb5(31): Cause.WRONG_KEY,  # KRB5KRB_AP_ERR_BAD_INTEGRITY
    _krb5(41): Cause.WRONG_KEY,  # KRB5KRB_AP_ERR_MODIFIED
    _krb5(34): Cause.REPLAY,  # KRB5KRB_AP_ERR_REPEAT
    _krb5(35): Cause.MISSING_PRINCIPAL,  # KRB5KRB_AP_ERR_NOT_US
    _krb5(7): Cause.MISSING_PRINCIPAL,  # KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN
    _krb5(14): Cause.UNSUPPORTED_ENCTYPE,  # KRB5KDC_ERR_ETYPE_NOSUPP
    _krb5(45): Cause.UNSUPPORTED_ENCTYPE,  # KRB5KRB_AP_ERR_NOKEY
}

# Most specific first: MIT adds the kvno / principal / enctype only to the text.
_TEXT_CAUSES: Final[tuple[tuple[re.Pattern[str], Cause], ...]] = (
    (re.compile(r"clock skew", re.I), Cause.CLOCK_SKEW),
    (re.compile(r"kvno \d+ not found|key version number .* incorrect", re.I), Cause.KVNO_MISMATCH),
    (re.compile(r"enctype|encryption type|no support for encryption", re.I), Cause.UNSUPPORTED_ENCTYPE),
    (re.compile(r"no key table entry|not found in keytab|server not found|"
                r"principal .* not found|no principal in keytab|not found in kerberos database", re.I),
     Cause.MISSING_PRINCIPAL),
    (re.compile(r"decrypt integrity|message stream modified", re.I), Cause.WRONG_KEY),
    (re.compile(r"ticket expired|ticket is expired", re.I), Cause.TICKET_EXPIRED),
    (re.compile(r"context has expired|context expired", re.I), Cause.CONTEXT_EXPIRED),
    (re.compile(r"cannot contact any kdc|cannot find kdc", re.I), Cause.KDC_UNREACHABLE),
    (re.compile(r"duplicate|replay|request is a replay", re.I), Cause.REPLAY),
    # An initiator's credential cache (the acceptor reads only its keytab).
    (re.compile(r"no credentials cache found|no kerberos credentials available", re.I), Cause.NO_TICKET),
    (re.compile(r"key table file .* not found|no such file|permission denied|no credentials",
                re.I), Cause.NO_CREDENTIALS),
)

# RFC 2744 §3.9.1 routine errors, in words.
_MAJOR_TEXT: Final = {
    1: "unsupported mechanism",
    2: "invalid name",
    3: "unsupported name type",
    4: "bad channel bindings",
    5: "bad status code",
    6: "invalid signature (bad checksum)",
    7: "no credentials",
    8: "no such context",
    9: "defective token",
    10: "defective credential",
    11: "credentials expired",
    12: "context expired",
    13: "unspecified failure (see the minor status)",
    14: "unsupported quality of protection",
    15: "operation not authorised",
    16: "operation unavailable",
    17: "duplicate element",
    18: "name not a mechanism name",
}

_MAJOR_CAUSES: Final = {
    1: Cause.BAD_TOKEN,  # not a Kerberos V5 token at all
    6: Cause.BAD_SIGNATURE,
    7: Cause.NO_CREDENTIALS,
    9: Cause.BAD_TOKEN,
    10: Cause.BAD_TOKEN,
    11: Cause.TICKET_EXPIRED,
    12: Cause.CONTEXT_EXPIRED,
}

_KVNO_RE: Final = re.compile(r"kvno (\d+)", re.I)
_MINOR_MSG_RE: Final = re.compile(r"Minor \(\d+\): (.*)$", re.S)


@dataclass(slots=True, frozen=True)
class GssFailure:
    """A GSS-API failure in words."""

    major: int
    minor: int
    major_text: str
    minor_text: str
    cause: Cause
    hint: str

    @property
    def kvno(self) -> int | None:
        """The kvno MIT named in the message, if any."""
        m = _KVNO_RE.search(self.minor_text)
        return int(m.group(1)) if m else None

    def describe(self) -> str:
        text = f"GSS {self.major_text}"
        if self.minor_text:
            text += f": {self.minor_text}"
        text += f" [major {self.major:#x}, minor {self.minor:#x}]"
        return f"{text}; likely cause: {self.cause.value} ({self.hint})"


def routine_error(major: int) -> int:
    return (major >> 16) & 0xFF


def translate(major: int, minor: int, minor_text: str = "", *, per_message: bool = False) -> GssFailure:
    """Translate a status pair; ``minor_text`` is MIT's own message when known.

    ``per_message``: the failure came from verify_mic/unwrap on an established context, where
    an integrity failure means the message was altered, not that the keytab is wrong.
    """
    if minor_text.strip().lower() == "success":
        minor_text = ""
    routine = routine_error(major)
    major_text = _MAJOR_TEXT.get(routine)
    if major_text is None:
        supplementary = major & 0xFFFF
        major_text = f"supplementary status {supplementary:#x}" if supplementary else "no error"
    cause = _MINOR_CAUSES.get(minor & 0xFFFFFFFF)
    if cause is None and minor_text:
        for pattern, c in _TEXT_CAUSES:
            if pattern.search(minor_text):
                cause = c
                break
    if cause is None:
        cause = _MAJOR_CAUSES.get(routine, Cause.UNKNOWN)
    if per_message and cause is Cause.WRONG_KEY:
        cause = Cause.BAD_SIGNATURE
    return GssFailure(major, minor & 0xFFFFFFFF, major_text, minor_text, cause, _HINTS[cause])


def translate_exception(exc: BaseException, *, per_message: bool = False) -> GssFailure:
    """Translate a python-gssapi GSSError (or anything carrying maj_code/min_code)."""
    major = int(getattr(exc, "maj_code", 0) or 0)
    minor = int(getattr(exc, "min_code", 0) or 0)
    # python-gssapi formats MIT's messages when the exception is made, on the failing thread:
    # MIT keeps the detailed text (with the kvno, principal, enctype) per thread, so it must
    # be taken from the exception rather than looked up again here.
    text = str(exc)
    m = _MINOR_MSG_RE.search(text)
    if m:
        text = m.group(1).strip()
    return translate(major, minor, text, per_message=per_message)
