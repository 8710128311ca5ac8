"""Key derivation: RFC 3961 §5.1 n-fold/DK for the RFC 3962 enctypes, RFC 8009 §3 KDF.

Per key usage u a base key yields three keys (RFC 3961 §5.3, RFC 8009 §5):
Ke (encryption, constant u|0xAA), Ki (integrity of encrypted data, u|0x55) and
Kc (checksums, u|0x99).  These are computed once per context and usage.
"""

from __future__ import annotations

import hmac as _hmac
import math
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from securenfs.gsscrypto.cts import BLOCK, AesCts
from securenfs.gsscrypto.enctypes import EnctypeProfile, KdfKind

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
}

CONST_KC = 0x99
CONST_KE = 0xAA
CONST_KI = 0x55


def nfold(data: bytes, nbytes: int) -> bytes:
    """RFC 3961 §5.1 n-fold of ``data`` to ``nbytes`` octets.

    Copies of the input, each rotated right by 13 bits more than the previous, are laid
    end to end until the length is a common multiple of both sizes, then added in
    ``nbytes`` chunks with one's-complement (end-around carry) addition.
    """
    inlen = len(data)
    if inlen == 0 or nbytes <= 0:
        raise ValueError("n-fold needs non-empty input and output")
    total = inlen * nbytes // math.gcd(inlen, nbytes)
    inbits = inlen * 8
    inmask = (1 << inbits) - 1
    rot = 13 % inbits
    cur = int.from_bytes(data, "big")
    copies = bytearray()
    for _ in range(total // inlen):
        copies += cur.to_bytes(inlen, "big")
        cur = ((cur >> rot) | (cur << (inbits - rot))) & inmask
    outbits = nbytes * 8
    outmask = (1 << outbits) - 1
    acc = 0
    for i in range(0, total, nbytes):
        acc += int.from_bytes(copies[i : i + nbytes], "big")
        while acc > outmask:
            acc = (acc & outmask) + (acc >> outbits)
    return acc.to_bytes(nbytes, "big")


def dk_aes(base_key: bytes, constant: bytes) -> bytes:
    """DK(Key, Constant) = random-to-key(DR(Key, Constant)) for AES (RFC 3961 §5.1, RFC 3962).

    DR feeds n-fold(Constant) through AES repeatedly, concatenating the outputs until
    there are enough octets for a key; random-to-key is the identity for AES.
    """
    cipher = AesCts(base_key)
    block = nfold(constant, BLOCK) if len(constant) != BLOCK else constant
    out = bytearray()
    while len(out) < len(base_key):
        block = cipher.encrypt_block(block)
        out += block
    return bytes(out[: len(base_key)])


def kdf_hmac_sha2(key: bytes, label: bytes, nbits: int, hash_name: str) -> bytes:
    """RFC 8009 §3 KDF-HMAC-SHA2(key, label, k) with an empty context.

    K1 = HMAC-SHA2(key, 0x00000001 | label | 0x00 | k) and k-truncate(K1); every output
    the enctypes need fits in one HMAC block, so one iteration suffices.
    """
    msg = b"\x00\x00\x00\x01" + label + b"\x00" + nbits.to_bytes(4, "big")
    out = _hmac.digest(key, msg, hash_name)
    if nbits > len(out) * 8:
        raise ValueError("requested key longer than one HMAC output")
    return out[: nbits // 8]


@dataclass(slots=True, frozen=True)
class UsageKeys:
    """Ke, Ki and Kc for one key usage number."""

    ke: bytes
    ki: bytes
    kc: bytes


def derive_usage_keys(profile: EnctypeProfile, base_key: bytes, usage: int) -> UsageKeys:
    """Derive Ke/Ki/Kc of ``base_key`` for key usage ``usage``."""
    if len(base_key) != profile.key_bytes:
        raise ValueError(
            f"{profile.name} needs a {profile.key_bytes}-octet key, got {len(base_key)}"
        )
    u = usage.to_bytes(4, "big")
    if profile.kind is KdfKind.RFC3962:
        return UsageKeys(
            ke=dk_aes(base_key, u + bytes([CONST_KE])),
            ki=dk_aes(base_key, u + bytes([CONST_KI])),
            kc=dk_aes(base_key, u + bytes([CONST_KC])),
        )
    h = profile.hash_name
    return UsageKeys(
        ke=kdf_hmac_sha2(base_key, u + bytes([CONST_KE]), profile.key_bytes * 8, h),
        ki=kdf_hmac_sha2(base_key, u + bytes([CONST_KI]), profile.ki_bytes * 8, h),
        kc=kdf_hmac_sha2(base_key, u + bytes([CONST_KC]), profile.ki_bytes * 8, h),
    )


def string_to_key(profile: EnctypeProfile, password: bytes, salt: bytes, iterations: int) -> bytes:
    """Password to base key (RFC 3962 §4, RFC 8009 §4).

    Not used on the data path (contexts hand over their keys); it exists so the key
    derivation can be checked against the RFCs' published string-to-key results.
    """
    if profile.kind is KdfKind.RFC3962:
        tkey = PBKDF2HMAC(hashes.SHA1(), profile.key_bytes, salt, iterations).derive(password)
        return dk_aes(tkey, b"kerberos")
    saltp = profile.kdf_label_prefix + b"\x00" + salt
    algo = _HASHES[profile.hash_name]()
    tkey = PBKDF2HMAC(algo, profile.key_bytes, saltp, iterations).derive(password)
    return kdf_hmac_sha2(tkey, b"kerberos", profile.key_bytes * 8, profile.hash_name)
