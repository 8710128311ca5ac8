"""The RFC 2203 §5.3.3.1 sequence window against a plain set-based model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from securenfs.rpcsec_gss.seqwindow import SeqVerdict, SeqWindow


class Model:
    def __init__(self, size: int):
        self.size, self.top, self.seen = size, -1, set()

    def check(self, seq: int) -> SeqVerdict:
        if seq > self.top:
            self.top = seq
            self.seen.add(seq)
            return SeqVerdict.ACCEPT
        if seq <= self.top - self.size:
            return SeqVerdict.BELOW_WINDOW
        if seq in self.seen:
            return SeqVerdict.DUPLICATE
        self.seen.add(seq)
        return SeqVerdict.ACCEPT


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 200), st.lists(st.integers(0, 2000), max_size=300))
def test_window_matches_model(size: int, seqs: list[int]) -> None:
    w, m = SeqWindow(size), Model(size)
    for s in seqs:
        assert w.check(s) == m.check(s), (size, s)


def test_in_window_reordering_accepted_once() -> None:
    w = SeqWindow(128)
    assert [w.check(s) for s in (5, 3, 4, 1, 2)] == [SeqVerdict.ACCEPT] * 5
    assert w.check(3) is SeqVerdict.DUPLICATE
    assert w.check(5) is SeqVerdict.DUPLICATE


def test_far_jump_forgets_and_drops_below() -> None:
    w = SeqWindow(128)
    w.check(1)
    assert w.check(10_000) is SeqVerdict.ACCEPT
    assert w.check(2) is SeqVerdict.BELOW_WINDOW
    assert w.check(10_000 - 127) is SeqVerdict.ACCEPT
    assert w.check(10_000 - 128) is SeqVerdict.BELOW_WINDOW
