"""AES in CBC mode with ciphertext stealing, as Kerberos uses it (RFC 3962 §5, RFC 8009 §5).

Kerberos CTS is CBC-CS3: the last two ciphertext blocks are always swapped (even when the
input is a whole number of blocks) and the final one is cut to the length of the last
plaintext block.  One block of input is plain CBC.  The bulk goes through OpenSSL's CBC
in one call, written straight into the caller's buffer; only the final block is handled
here.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

BLOCK = 16
ZERO_IV = bytes(BLOCK)
# update_into() needs this much room past the data it writes.
SLACK = BLOCK - 1

Buffer = bytes | bytearray | memoryview


class AesCts:
    """AES-CBC-CTS with one key and a zero initial vector (the cipher state GSS uses)."""

    __slots__ = ("_alg", "_cbc", "_ecb")

    def __init__(self, key: bytes) -> None:
        alg = algorithms.AES(key)
        self._alg = alg
        self._cbc = Cipher(alg, modes.CBC(ZERO_IV))
        self._ecb = Cipher(alg, modes.ECB())

    def encrypt_into(self, pieces: Sequence[Buffer], total: int, out: memoryview) -> None:
        """Encrypt the concatenation of ``pieces`` (``total`` >= 16 octets) into ``out``.

        ``out`` must have at least ``total + SLACK`` writable octets; the ciphertext is
        exactly ``total`` octets long.
        """
        if total < BLOCK:
            raise ValueError("CTS needs at least one block of input")
        enc = self._cbc.encryptor()
        if total == BLOCK:
            pos = 0
            for p in pieces:
                if len(p):
                    pos += enc.update_into(p, out[pos:])
            enc.finalize()
            return
        nblocks = (total + BLOCK - 1) // BLOCK
        full = BLOCK * (nblocks - 1)  # octets that go through plain CBC
        fed = 0
        pos = 0
        tail: list[Buffer] = []
        for p in pieces:
            n = len(p)
            if not n:
                continue
            if fed + n <= full:
                pos += enc.update_into(p, out[pos:])
                fed += n
                continue
            k = full - fed
            mv = memoryview(p)
            if k > 0:
                pos += enc.update_into(mv[:k], out[pos:])
                fed = full
            tail.append(mv[k:])
        last = b"".join(tail)
        r = len(last)
        # C(n) = E(C(n-1) xor (P(n) | zeros)); the CBC state already holds C(n-1).
        cn = enc.update(last + ZERO_IV[r:])
        enc.finalize()
        cn_1 = bytes(out[full - BLOCK : full])
        out[full - BLOCK : full] = cn
        out[full : full + r] = cn_1[:r]

    def decrypt_into(self, data: memoryview, out: memoryview, skip_first: bool = False) -> int:
        """Decrypt ``data`` (>= 16 octets) into ``out`` and return the octets written.

        With ``skip_first`` the first plaintext block is not produced (CBC lets block i be
        decrypted from C(i-1) alone), so ``out`` receives plaintext from octet 16 on.
        ``out`` must have at least ``len(data) + SLACK`` writable octets.
        """
        n = len(data)
        if n < BLOCK:
            raise ValueError("CTS ciphertext shorter than one block")
        if n == BLOCK:
            if skip_first:
                return 0
            out[:BLOCK] = self._ecb.decryptor().update(data)
            return BLOCK
        nblocks = (n + BLOCK - 1) // BLOCK
        full = BLOCK * (nblocks - 1)
        r = n - full
        # Swapped on the wire: ... C(n-2) | C(n) | C(n-1) cut to r octets.
        cn = data[full - BLOCK : full]
        cn_1_cut = data[full:]
        d = self._ecb.decryptor().update(cn)  # = C(n-1) xor (P(n) | zeros)
        pn = (int.from_bytes(d[:r], "big") ^ int.from_bytes(cn_1_cut, "big")).to_bytes(r, "big")
        cn_1 = bytes(cn_1_cut) + d[r:]
        if skip_first:
            if nblocks == 2:
                # Only P(n) is wanted: P(n-1) would be the first block.
                out[:r] = pn
                return r
            dec = self._cbc_from(data[:BLOCK])
            body = data[BLOCK : full - BLOCK]
        else:
            dec = self._cbc.decryptor()
            body = data[: full - BLOCK]
        pos = dec.update_into(body, out) if len(body) else 0
        pos += dec.update_into(cn_1, out[pos:])
        dec.finalize()
        out[pos : pos + r] = pn
        return pos + r

    def _cbc_from(self, iv: Buffer) -> CipherContext:
        return Cipher(self._alg, modes.CBC(bytes(iv))).decryptor()

    def encrypt(self, data: Buffer) -> bytes:
        """One-shot encryption (known-answer tests, key derivation)."""
        out = bytearray(len(data) + SLACK)
        self.encrypt_into((data,), len(data), memoryview(out))
        return bytes(out[: len(data)])

    def decrypt(self, data: Buffer) -> bytes:
        out = bytearray(len(data) + SLACK)
        n = self.decrypt_into(memoryview(data), memoryview(out))
        return bytes(out[:n])

    def encrypt_block(self, block: Buffer) -> bytes:
        """Raw AES of one block (RFC 3961 DR() uses this for AES)."""
        return self._ecb.encryptor().update(block)
