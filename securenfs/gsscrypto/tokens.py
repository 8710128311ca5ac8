"""RFC 4121 per-message tokens (MIC and Wrap) computed with OpenSSL.

Token layouts (RFC 4121 §4.2.6):

    MIC:  04 04 | flags | FF FF FF FF FF | SND_SEQ(8) | checksum
    Wrap: 05 04 | flags | FF | EC(2) | RRC(2) | SND_SEQ(8) | data

For a sealed Wrap token the data is E(conf | message | filler(EC) | header) | MAC, with the
header copy carrying RRC = 0 (§4.2.4); without confidentiality it is
message | checksum(message | header with EC = RRC = 0) and EC holds the checksum length.
"""

from __future__ import annotations

import enum
import hmac
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from securenfs.gsscrypto.cts import SLACK, Buffer
from securenfs.gsscrypto.enctypes import profile_for
from securenfs.gsscrypto.errors import BadChecksum, BadToken
from securenfs.gsscrypto.usagecrypto import UsageCrypto

if TYPE_CHECKING:
    from gssapi import SecurityContext

TOK_ID_MIC = b"\x04\x04"
TOK_ID_WRAP = b"\x05\x04"
_MIC_FILLER = b"\xff" * 5
HEADER_BYTES = 16
SEQ_MASK = (1 << 64) - 1


class TokenFlags(enum.IntFlag):
    """RFC 4121 §4.2.2 token flags."""

    SENT_BY_ACCEPTOR = 0x01
    SEALED = 0x02
    ACCEPTOR_SUBKEY = 0x04


class KeyUsage(enum.IntEnum):
    """RFC 4121 §2 key usage numbers."""

    ACCEPTOR_SEAL = 22
    ACCEPTOR_SIGN = 23
    INITIATOR_SEAL = 24
    INITIATOR_SIGN = 25


# The flag bits a receiver checks; SEALED only chooses how a Wrap token is processed.
_ROLE_BITS = TokenFlags.SENT_BY_ACCEPTOR | TokenFlags.ACCEPTOR_SUBKEY

# Working buffers are kept per thread and reused: a fresh megabyte-sized bytearray per call
# means fresh pages from the kernel (glibc gives large blocks back on free), and the page
# faults cost as much as the AES itself.  Only the result is allocated per call.
_SCRATCH_KEEP_MAX = 8 << 20
_scratch = threading.local()


def _scratch_buffer(size: int) -> bytearray:
    buf: bytearray | None = getattr(_scratch, "buf", None)
    if buf is not None and len(buf) >= size:
        return buf
    buf = bytearray(size)
    if size <= _SCRATCH_KEEP_MAX:
        _scratch.buf = buf
    return buf


def _view(data: Buffer) -> memoryview:
    mv = memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


class FastContext:
    """Per-message protection for one established krb5 GSS context, without libk5crypto.

    Built from a python-gssapi context by :meth:`from_gss`.  The derived keys are fixed
    for the life of the context; the send sequence number is the only mutable state and
    is taken under a lock, so one instance may be used from several threads at once.
    Received sequence numbers are not checked: RPCSEC_GSS keeps its own window
    (RFC 2203 §5.3.3.1), as a GSS context without replay/sequence flags would.
    """

    __slots__ = (
        "_mac",
        "_mic_prefix",
        "_recv_role",
        "_recv_seal",
        "_recv_sign",
        "_send_seal",
        "_send_sign",
        "_seq",
        "_seq_lock",
        "_wrap_conf_prefix",
        "_wrap_integ_prefix",
        "_wrap_integ_prefix0",
        "acceptor_subkey",
        "enctype",
        "enctype_number",
        "initiator",
    )

    def __init__(
        self,
        enctype: int,
        key: bytes,
        *,
        initiator: bool,
        acceptor_subkey: bool,
        send_seq: int = 0,
    ) -> None:
        profile = profile_for(enctype)
        if profile is None:
            raise ValueError(f"enctype {enctype} is not supported by the fast path")
        self.enctype: str = profile.name
        self.enctype_number: int = int(profile.enctype)
        self.initiator = initiator
        self.acceptor_subkey = acceptor_subkey
        self._mac = profile.mac_bytes
        if initiator:
            send_seal, send_sign = KeyUsage.INITIATOR_SEAL, KeyUsage.INITIATOR_SIGN
            recv_seal, recv_sign = KeyUsage.ACCEPTOR_SEAL, KeyUsage.ACCEPTOR_SIGN
        else:
            send_seal, send_sign = KeyUsage.ACCEPTOR_SEAL, KeyUsage.ACCEPTOR_SIGN
            recv_seal, recv_sign = KeyUsage.INITIATOR_SEAL, KeyUsage.INITIATOR_SIGN
        self._send_seal = UsageCrypto(profile, key, send_seal)
        self._send_sign = UsageCrypto(profile, key, send_sign)
        self._recv_seal = UsageCrypto(profile, key, recv_seal)
        self._recv_sign = UsageCrypto(profile, key, recv_sign)

        subkey = TokenFlags.ACCEPTOR_SUBKEY if acceptor_subkey else TokenFlags(0)
        send_flags = subkey | (TokenFlags(0) if initiator else TokenFlags.SENT_BY_ACCEPTOR)
        # RFC 4121 §4.2.2: the peer must say it is the other side, and use the same key.
        self._recv_role = int(
            subkey | (TokenFlags.SENT_BY_ACCEPTOR if initiator else TokenFlags(0))
        )
        self._mic_prefix = TOK_ID_MIC + bytes([send_flags]) + b"\xff" * 5
        self._wrap_conf_prefix = (
            TOK_ID_WRAP + bytes([send_flags | TokenFlags.SEALED, 0xFF]) + b"\0\0\0\0"
        )
        self._wrap_integ_prefix = (
            TOK_ID_WRAP + bytes([send_flags, 0xFF]) + self._mac.to_bytes(2, "big") + b"\0\0"
        )
        self._wrap_integ_prefix0 = TOK_ID_WRAP + bytes([send_flags, 0xFF]) + b"\0\0\0\0"
        self._seq = send_seq & SEQ_MASK
        self._seq_lock = threading.Lock()

    @classmethod
    def from_gss(cls, ctx: SecurityContext) -> FastContext | None:
        """A fast path for an established python-gssapi krb5 context, or None (reason logged).

        See :func:`securenfs.gsscrypto.keysource.fast_context_from_gss`.
        """
        from securenfs.gsscrypto.keysource import fast_context_from_gss

        return fast_context_from_gss(ctx)

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "acceptor"
        return f"<FastContext {self.enctype} {role}>"

    # -- sending ------------------------------------------------------------------------

    def _next_seq(self) -> bytes:
        with self._seq_lock:
            seq = self._seq
            self._seq = (seq + 1) & SEQ_MASK
        return seq.to_bytes(8, "big")

    def get_mic(self, message: Buffer) -> bytes:
        """A MIC token for ``message`` (RFC 4121 §4.2.6.1)."""
        header = self._mic_prefix + self._next_seq()
        return header + self._send_sign.checksum((message, header))

    def wrap(self, message: Buffer, confidential: bool = True) -> bytes:
        """A Wrap token for ``message`` (RFC 4121 §4.2.6.2), sealed unless told otherwise."""
        seq = self._next_seq()
        if not confidential:
            header = self._wrap_integ_prefix + seq
            cksum = self._send_seal.checksum((message, self._wrap_integ_prefix0 + seq))
            return b"".join((header, message, cksum))
        # EC = 0: AES-CTS needs no padding; RRC = 0 (no rotation) as MIT sends.
        header = self._wrap_conf_prefix + seq
        seal = self._send_seal
        plain_len = len(message) + HEADER_BYTES
        total = HEADER_BYTES + seal.ciphertext_len(plain_len)
        mv = memoryview(_scratch_buffer(total + SLACK))
        mv[:HEADER_BYTES] = header
        seal.encrypt_into((message, header), plain_len, mv[HEADER_BYTES:])
        return bytes(mv[:total])

    def get_mic_pieces(self, pieces: Sequence[Buffer]) -> bytes:
        """A MIC token over the concatenation of ``pieces`` (nothing is joined)."""
        header = self._mic_prefix + self._next_seq()
        return header + self._send_sign.checksum((*pieces, header))

    def wrap_opaque(self, pieces: Sequence[Buffer]) -> memoryview:
        """A sealed Wrap token over the concatenation of ``pieces``, as XDR ``opaque<>``.

        The result is the 4-octet length, the token and its zero padding (RFC 4506 §4.10)
        in one new buffer, ready to send: RPCSEC_GSS privacy bodies are exactly this
        (RFC 2203 §5.3.2.3, ``rpc_gss_priv_data``).  The message parts are encrypted and
        MACed where they lie, so a megabyte body is never joined or copied.
        """
        seq = self._next_seq()
        header = self._wrap_conf_prefix + seq
        seal = self._send_seal
        plain_len = HEADER_BYTES
        for p in pieces:
            plain_len += len(p)
        tok_len = HEADER_BYTES + seal.ciphertext_len(plain_len)
        end = 4 + tok_len + (-tok_len & 3)
        out = bytearray(end + SLACK)  # zero-filled: the XDR padding is already in place
        mv = memoryview(out)
        mv[:4] = tok_len.to_bytes(4, "big")
        mv[4 : 4 + HEADER_BYTES] = header
        seal.encrypt_into((*pieces, header), plain_len, mv[4 + HEADER_BYTES :])
        # encrypt_into may leave bytes in the slack after the ciphertext; the padding
        # must be zero.
        mv[4 + tok_len : end] = bytes(end - 4 - tok_len)
        return mv[:end]

    def is_own_mic(self, message: Buffer, token: Buffer) -> bool:
        """Whether ``token`` is the MIC this side would send over ``message`` (any sequence).

        Used once per context to prove that the keys obtained from the GSS library are
        the ones it uses itself.
        """
        t = _view(token)
        if len(t) != HEADER_BYTES + self._mac or t[:8] != self._mic_prefix:
            return False
        expected = self._send_sign.checksum((message, t[:HEADER_BYTES]))
        return hmac.compare_digest(expected, t[HEADER_BYTES:])

    # -- receiving ----------------------------------------------------------------------

    def _check_role(self, flags: int) -> None:
        if flags & _ROLE_BITS != self._recv_role:
            raise BadToken(f"token flags {flags:#04x} do not match this context")

    def verify_mic(self, message: Buffer, token: Buffer) -> None:
        """Check a MIC token over ``message``; raise BadToken if it does not verify."""
        t = _view(token)
        if len(t) != HEADER_BYTES + self._mac:
            raise BadToken("MIC token has the wrong length")
        if t[:2].tobytes() != TOK_ID_MIC or t[3:8].tobytes() != _MIC_FILLER:
            raise BadToken("not a MIC token")
        self._check_role(t[2])
        expected = self._recv_sign.checksum((message, t[:HEADER_BYTES]))
        if not hmac.compare_digest(expected, t[HEADER_BYTES:]):
            raise BadChecksum("MIC does not verify")

    def unwrap(self, token: Buffer) -> tuple[bytes, bool]:
        """Verify (and decrypt) a Wrap token; return (message, was_confidential)."""
        message, sealed = self._unwrap(token, False)
        return bytes(message), sealed

    def unwrap_view(self, token: Buffer) -> tuple[memoryview, bool]:
        """As :meth:`unwrap`, but the message is a view of a buffer of its own.

        A sealed token is decrypted into a new buffer that the view keeps alive, so the
        plaintext is never copied again (large krb5p WRITE bodies go to the file from it).
        """
        return self._unwrap(token, True)

    def _unwrap(self, token: Buffer, fresh: bool) -> tuple[memoryview, bool]:
        t = _view(token)
        if len(t) < HEADER_BYTES:
            raise BadToken("Wrap token shorter than its header")
        if t[:2] != TOK_ID_WRAP or t[3] != 0xFF:
            raise BadToken("not a Wrap token")
        flags = t[2]
        self._check_role(flags)
        ec = (t[4] << 8) | t[5]
        rrc = (t[6] << 8) | t[7]
        body = t[HEADER_BYTES:]
        if rrc and len(body):
            # RFC 4121 §4.2.5: the sender rotated the data right by RRC octets.
            r = rrc % len(body)
            body = memoryview(b"".join((body[r:], body[:r])))
        if flags & TokenFlags.SEALED:
            room = bytearray(len(body) + SLACK) if fresh else _scratch_buffer(len(body) + SLACK)
            plain = self._recv_seal.decrypt_into(body, room)
            end = len(plain) - HEADER_BYTES
            if end - ec < 0:
                raise BadToken("sealed Wrap token too short for its header copy")
            copy = plain[end:]
            # RFC 4121 §4.2.4: the encrypted copy is the header with RRC = 0.  EC is
            # compared too (MIT skips it), so a changed EC cannot shorten the message.
            if copy[:6] != t[:6] or copy[8:16] != t[8:16]:
                raise BadChecksum("encrypted header does not match the token header")
            return plain[: end - ec], True
        if ec != self._mac or len(body) < ec:
            raise BadToken("Wrap token checksum length is wrong")
        split = len(body) - ec
        message = body[:split]
        header0 = b"".join((t[:4], b"\0\0\0\0", t[8:16]))
        expected = self._recv_seal.checksum((message, header0))
        if not hmac.compare_digest(expected, body[split:]):
            raise BadChecksum("Wrap token checksum does not verify")
        return message, False
