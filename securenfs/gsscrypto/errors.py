"""Errors raised by the RFC 4121 fast path."""

from __future__ import annotations


class BadToken(Exception):
    """A per-message token failed to parse or to verify.

    Raised wherever ``gss_unwrap``/``gss_verify_mic`` would have failed with
    GSS_S_DEFECTIVE_TOKEN or GSS_S_BAD_SIG; callers treat it exactly like that
    failure (RFC 2203 §5.3.3.4: the request is dropped).
    """


class BadChecksum(BadToken):
    """The token is well formed but its checksum (MIC, Wrap HMAC or header copy) is wrong.

    gss_verify_mic/gss_unwrap report this case as GSS_S_BAD_SIG; other BadTokens are
    GSS_S_DEFECTIVE_TOKEN.
    """
