"""The Kerberos encryption types the fast path implements, and their parameters.

aes128/aes256-cts-hmac-sha1-96 are RFC 3962 (simplified profile of RFC 3961 §5.3);
aes128-cts-hmac-sha256-128 and aes256-cts-hmac-sha384-192 are RFC 8009.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Enctype(enum.IntEnum):
    """IANA Kerberos encryption type numbers (RFC 3962 §7, RFC 8009 §8)."""

    AES128_CTS_HMAC_SHA1_96 = 17
    AES256_CTS_HMAC_SHA1_96 = 18
    AES128_CTS_HMAC_SHA256_128 = 19
    AES256_CTS_HMAC_SHA384_192 = 20


class KdfKind(enum.Enum):
    """How base keys become Ke/Ki/Kc, and what the integrity HMAC covers."""

    RFC3962 = "rfc3962"  # DK() with AES (RFC 3961 §5.1); HMAC over the plaintext
    RFC8009 = "rfc8009"  # KDF-HMAC-SHA2 (RFC 8009 §3); HMAC over IV | ciphertext


@dataclass(slots=True, frozen=True)
class EnctypeProfile:
    enctype: Enctype
    name: str  # the MIT/IANA name, as in krb5.conf
    kind: KdfKind
    key_bytes: int  # AES key length, also Ke length
    hash_name: str  # "sha1", "sha256", "sha384"
    ki_bytes: int  # integrity key length (Ki, Kc)
    mac_bytes: int  # truncated HMAC length h

    @property
    def kdf_label_prefix(self) -> bytes:
        return self.name.encode("ascii")


PROFILES: dict[int, EnctypeProfile] = {
    p.enctype: p
    for p in (
        EnctypeProfile(
            Enctype.AES128_CTS_HMAC_SHA1_96,
            "aes128-cts-hmac-sha1-96",
            KdfKind.RFC3962,
            16,
            "sha1",
            16,
            12,
        ),
        EnctypeProfile(
            Enctype.AES256_CTS_HMAC_SHA1_96,
            "aes256-cts-hmac-sha1-96",
            KdfKind.RFC3962,
            32,
            "sha1",
            32,
            12,
        ),
        EnctypeProfile(
            Enctype.AES128_CTS_HMAC_SHA256_128,
            "aes128-cts-hmac-sha256-128",
            KdfKind.RFC8009,
            16,
            "sha256",
            16,
            16,
        ),
        EnctypeProfile(
            Enctype.AES256_CTS_HMAC_SHA384_192,
            "aes256-cts-hmac-sha384-192",
            KdfKind.RFC8009,
            32,
            "sha384",
            24,
            24,
        ),
    )
}


def profile_for(enctype: int) -> EnctypeProfile | None:
    """The profile for ``enctype``, or None if the fast path does not implement it."""
    return PROFILES.get(enctype)
