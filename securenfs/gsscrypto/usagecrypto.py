"""Encryption and checksums under one key usage (RFC 3961 §5.3 and §5.4, RFC 8009 §5).

Everything derivable from the base key is computed once: the AES cipher objects for Ke
and keyed HMAC states for Ki and Kc, which each call copies instead of re-keying.
HMAC is OpenSSL's, through the standard library's ``hmac`` (``_hashlib``).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence

from securenfs.gsscrypto.cts import BLOCK, SLACK, ZERO_IV, AesCts, Buffer
from securenfs.gsscrypto.enctypes import EnctypeProfile, KdfKind
from securenfs.gsscrypto.errors import BadChecksum, BadToken
from securenfs.gsscrypto.kdf import derive_usage_keys

CONFOUNDER_BYTES = BLOCK  # RFC 3962 §6 and RFC 8009 §5: one cipher block


class UsageCrypto:
    """Ke/Ki/Kc of one base key for one key usage, ready to use."""

    __slots__ = ("_etm", "_kc", "_ki", "cts", "mac_bytes", "profile")

    def __init__(self, profile: EnctypeProfile, base_key: bytes, usage: int) -> None:
        keys = derive_usage_keys(profile, base_key, usage)
        self.profile = profile
        self.mac_bytes = profile.mac_bytes
        # RFC 8009 MACs the ciphertext (encrypt-then-MAC); RFC 3962 MACs the plaintext.
        self._etm = profile.kind is KdfKind.RFC8009
        self.cts = AesCts(keys.ke)
        self._ki = hmac.new(keys.ki, digestmod=profile.hash_name)
        self._kc = hmac.new(keys.kc, digestmod=profile.hash_name)

    # -- checksums (RFC 3961 §5.4 / RFC 8009 §5: HMAC(Kc, data) truncated) --------------

    def checksum(self, pieces: Sequence[Buffer]) -> bytes:
        h = self._kc.copy()
        for p in pieces:
            h.update(p)
        return h.digest()[: self.mac_bytes]

    # -- encryption ---------------------------------------------------------------------

    def ciphertext_len(self, plain_len: int) -> int:
        """Octets of ``encrypt`` output (confounder + plaintext + MAC) for ``plain_len``."""
        return CONFOUNDER_BYTES + plain_len + self.mac_bytes

    def encrypt_into(
        self,
        pieces: Sequence[Buffer],
        plain_len: int,
        out: memoryview,
        confounder: bytes | None = None,
    ) -> None:
        """Write E(conf | pieces) | MAC into ``out``.

        ``out`` needs ``ciphertext_len(plain_len) + SLACK`` writable octets.
        """
        conf = os.urandom(CONFOUNDER_BYTES) if confounder is None else confounder
        total = CONFOUNDER_BYTES + plain_len
        self.cts.encrypt_into((conf, *pieces), total, out)
        h = self._ki.copy()
        if self._etm:
            h.update(ZERO_IV)  # the cipher state, all zeros for GSS (RFC 8009 §5)
            h.update(out[:total])
        else:
            h.update(conf)
            for p in pieces:
                h.update(p)
        out[total : total + self.mac_bytes] = h.digest()[: self.mac_bytes]

    def encrypt(self, plaintext: Buffer, confounder: bytes | None = None) -> bytes:
        n = self.ciphertext_len(len(plaintext))
        out = bytearray(n + SLACK)
        self.encrypt_into((plaintext,), len(plaintext), memoryview(out), confounder)
        return bytes(out[:n])

    def decrypt_into(self, data: memoryview, out: bytearray) -> memoryview:
        """Verify and decrypt ``data`` (E(conf | P) | MAC); return a view of P in ``out``.

        ``out`` needs ``len(data) + SLACK`` octets.  Raises BadToken when the MAC is wrong.
        """
        h_len = self.mac_bytes
        n = len(data) - h_len
        if n < CONFOUNDER_BYTES:
            raise BadToken("ciphertext shorter than confounder and checksum")
        ct = data[:n]
        mac = data[n:]
        h = self._ki.copy()
        mv = memoryview(out)
        if self._etm:
            h.update(ZERO_IV)
            h.update(ct)
            if not hmac.compare_digest(h.digest()[:h_len], mac):
                raise BadChecksum("integrity check failed")
            got = self.cts.decrypt_into(ct, mv, skip_first=True)
            return mv[:got]
        got = self.cts.decrypt_into(ct, mv)
        h.update(mv[:got])
        if not hmac.compare_digest(h.digest()[:h_len], mac):
            raise BadChecksum("integrity check failed")
        return mv[CONFOUNDER_BYTES:got]

    def decrypt(self, data: Buffer) -> bytes:
        out = bytearray(len(data) + SLACK)
        return bytes(self.decrypt_into(memoryview(data), out))
