"""RFC 4121 token handling between two FastContexts (no GSS library involved)."""

from __future__ import annotations

import os
import threading

import pytest

from securenfs.gsscrypto import BadToken, Enctype, FastContext, TokenFlags
from securenfs.gsscrypto.enctypes import PROFILES

ENCTYPES = [int(e) for e in Enctype]


def pair(enctype: int, subkey: bool = True) -> tuple[FastContext, FastContext]:
    key = os.urandom(PROFILES[enctype].key_bytes)
    init = FastContext(enctype, key, initiator=True, acceptor_subkey=subkey, send_seq=1000)
    acc = FastContext(enctype, key, initiator=False, acceptor_subkey=subkey, send_seq=7)
    return init, acc


@pytest.mark.parametrize("enctype", ENCTYPES)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 31, 32, 33, 4096])
def test_round_trip_both_directions(enctype: int, size: int) -> None:
    init, acc = pair(enctype)
    msg = os.urandom(size)
    for a, b in ((init, acc), (acc, init)):
        assert b.unwrap(a.wrap(msg)) == (msg, True)
        assert b.unwrap(a.wrap(msg, confidential=False)) == (msg, False)
        b.verify_mic(msg, a.get_mic(msg))


@pytest.mark.parametrize("enctype", ENCTYPES)
def test_token_headers_follow_rfc4121(enctype: int) -> None:
    init, acc = pair(enctype)
    mac = PROFILES[enctype].mac_bytes
    mic = acc.get_mic(b"abc")
    assert mic[:2] == b"\x04\x04" and mic[3:8] == b"\xff" * 5
    assert mic[2] == TokenFlags.SENT_BY_ACCEPTOR | TokenFlags.ACCEPTOR_SUBKEY
    assert int.from_bytes(mic[8:16], "big") == 7
    assert len(mic) == 16 + mac
    sealed = init.wrap(b"abc")
    assert sealed[:2] == b"\x05\x04" and sealed[3] == 0xFF
    assert sealed[2] == TokenFlags.SEALED | TokenFlags.ACCEPTOR_SUBKEY
    assert sealed[4:8] == b"\0\0\0\0"  # EC = 0, RRC = 0
    assert int.from_bytes(sealed[8:16], "big") == 1000
    assert len(sealed) == 16 + 16 + 3 + 16 + mac
    clear = init.wrap(b"abc", confidential=False)
    assert clear[2] == TokenFlags.ACCEPTOR_SUBKEY
    assert int.from_bytes(clear[4:6], "big") == mac  # EC holds the checksum length
    assert clear[16:19] == b"abc"
    assert int.from_bytes(clear[8:16], "big") == 1001


def test_sequence_numbers_increase_and_wrap_at_64_bits() -> None:
    key = os.urandom(32)
    ctx = FastContext(18, key, initiator=True, acceptor_subkey=True, send_seq=(1 << 64) - 2)
    seqs = [int.from_bytes(ctx.get_mic(b"")[8:16], "big") for _ in range(3)]
    assert seqs == [(1 << 64) - 2, (1 << 64) - 1, 0]


@pytest.mark.parametrize("enctype", ENCTYPES)
def test_every_flipped_byte_is_rejected(enctype: int) -> None:
    init, acc = pair(enctype)
    msg = b"0123456789abcdefXYZ"
    for token, kind in (
        (init.wrap(msg), "wrap"),
        (init.wrap(msg, confidential=False), "wrap"),
        (init.get_mic(msg), "mic"),
    ):
        for i in range(len(token)):
            bad = bytearray(token)
            bad[i] ^= 0x40
            with pytest.raises(BadToken):
                if kind == "wrap":
                    acc.unwrap(bytes(bad))
                else:
                    acc.verify_mic(msg, bytes(bad))


@pytest.mark.parametrize("enctype", ENCTYPES)
def test_changed_rotation_count_is_rejected(enctype: int) -> None:
    init, acc = pair(enctype)
    for conf in (True, False):
        bad = bytearray(init.wrap(b"some message", conf))
        bad[7] = 5
        with pytest.raises(BadToken):
            acc.unwrap(bytes(bad))


@pytest.mark.parametrize("enctype", ENCTYPES)
@pytest.mark.parametrize("rrc", [1, 16, 28, 60, 1000])
def test_rotated_tokens_are_accepted(enctype: int, rrc: int) -> None:
    """RFC 4121 §4.2.5: the data after the header may arrive rotated right by RRC."""
    init, acc = pair(enctype)
    msg = os.urandom(40)
    for conf in (True, False):
        tok = init.wrap(msg, conf)
        body = tok[16:]
        r = rrc % len(body)
        rotated = tok[:6] + rrc.to_bytes(2, "big") + tok[8:16] + body[-r:] + body[:-r]
        if r == 0:
            rotated = tok[:6] + rrc.to_bytes(2, "big") + tok[8:]
        assert acc.unwrap(rotated) == (msg, conf)


def test_own_tokens_and_wrong_direction_are_rejected() -> None:
    """A reflected token (our own, sent back) fails the SentByAcceptor check."""
    init, acc = pair(18)
    with pytest.raises(BadToken):
        init.unwrap(init.wrap(b"x"))
    with pytest.raises(BadToken):
        acc.verify_mic(b"x", acc.get_mic(b"x"))


def test_acceptor_subkey_flag_must_match() -> None:
    key = os.urandom(32)
    init = FastContext(18, key, initiator=True, acceptor_subkey=False)
    acc = FastContext(18, key, initiator=False, acceptor_subkey=True)
    with pytest.raises(BadToken):
        acc.unwrap(init.wrap(b"x"))
    init2 = FastContext(18, key, initiator=True, acceptor_subkey=False)
    acc2 = FastContext(18, key, initiator=False, acceptor_subkey=False)
    assert acc2.unwrap(init2.wrap(b"x")) == (b"x", True)


def test_wrong_key_or_message_is_rejected() -> None:
    init, acc = pair(17)
    other, _ = pair(17)
    with pytest.raises(BadToken):
        acc.unwrap(other.wrap(b"x"))
    with pytest.raises(BadToken):
        acc.verify_mic(b"y", init.get_mic(b"x"))


@pytest.mark.parametrize(
    "garbage", [b"", b"\x05\x04", b"\x05\x04\x02\xff" + b"\0" * 12, b"\x60" * 80]
)
def test_truncated_and_foreign_tokens_are_rejected(garbage: bytes) -> None:
    _init, acc = pair(20)
    with pytest.raises(BadToken):
        acc.unwrap(garbage)
    with pytest.raises(BadToken):
        acc.verify_mic(b"", garbage)


@pytest.mark.parametrize("ec", [1, 3, 500])
def test_sealed_token_with_altered_ec_is_rejected(ec: int) -> None:
    """A changed filler count in the clear header must not shorten the message."""
    init, acc = pair(19)
    tok = bytearray(init.wrap(b"abc"))
    tok[4:6] = ec.to_bytes(2, "big")
    with pytest.raises(BadToken):
        acc.unwrap(bytes(tok))


def test_accepts_memoryview_and_bytearray_input() -> None:
    init, acc = pair(18)
    msg = bytearray(b"A" * 100)
    tok = init.wrap(memoryview(msg)[10:90])
    assert acc.unwrap(memoryview(bytearray(tok))) == (b"A" * 80, True)
    mic = init.get_mic(memoryview(msg))
    acc.verify_mic(bytearray(msg), memoryview(mic))


def test_unsupported_enctype_is_refused() -> None:
    with pytest.raises(ValueError):
        FastContext(23, os.urandom(16), initiator=True, acceptor_subkey=True)
    with pytest.raises(ValueError):
        FastContext(18, os.urandom(16), initiator=True, acceptor_subkey=True)


def test_concurrent_senders_never_reuse_a_sequence_number() -> None:
    init, acc = pair(18)
    seen: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        local = []
        for _ in range(500):
            tok = init.wrap(b"payload")
            assert acc.unwrap(tok) == (b"payload", True)
            local.append(int.from_bytes(tok[8:16], "big"))
        with lock:
            seen.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1000, 1000 + 2000))
