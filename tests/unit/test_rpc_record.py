"""Cutting complete fragments out of a receive buffer (securenfs.rpc.record)."""

from __future__ import annotations

from securenfs.rpc.record import HANDOVER_MIN, cut_fragment


def test_small_fragment_is_copied_and_the_buffer_kept() -> None:
    buf = bytearray(b"hdr!" + b"a" * 100 + b"rest")
    frag, rest = cut_fragment(buf, 4, 104)
    assert rest is None and isinstance(frag, bytearray) and frag == b"a" * 100
    buf[4] = 0  # the caller keeps receiving into buf: the fragment is its own copy
    assert frag[0] == ord("a")


def test_large_fragment_is_handed_over_in_place() -> None:
    body = bytes(range(256)) * (HANDOVER_MIN // 256 + 1)
    buf = bytearray(b"hdr!" + body + b"next record start")
    frag, rest = cut_fragment(buf, 4, 4 + len(body))
    assert isinstance(frag, memoryview) and frag.obj is buf and frag == body
    assert rest == b"next record start" and rest is not buf
    rest += b" and more"  # the new buffer grows freely; the view of the old one is intact
    assert frag == body


def test_large_fragment_behind_more_data_than_itself_is_copied() -> None:
    body = b"x" * HANDOVER_MIN
    buf = bytearray(b"hdr!" + body + b"y" * (HANDOVER_MIN + 1))
    frag, rest = cut_fragment(buf, 4, 4 + len(body))
    assert rest is None and isinstance(frag, bytearray) and frag == body
