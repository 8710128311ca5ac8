"""The RPCSEC_GSS sequence window (RFC 2203 §5.3.3.1).

The server remembers the highest seq_num seen and which of the ``size`` numbers at and below
it have been seen, as one integer bitmask (bit i = seq ``top - i``).  A number above the top
slides the window; a number inside it is accepted once; a number below it, or one already
seen, is a replay or a straggler and is dropped without a reply.

The window is only ever touched on the event-loop thread, so it needs no lock.
"""

from __future__ import annotations

import enum


class SeqVerdict(enum.Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    BELOW_WINDOW = "below window"


class SeqWindow:
    __slots__ = ("size", "top", "_mask", "_full")

    def __init__(self, size: int = 128):
        if size < 1:
            raise ValueError("sequence window must hold at least one number")
        self.size = size
        #: Highest seq_num accepted so far; -1 before the first.
        self.top = -1
        self._mask = 0
        self._full = (1 << size) - 1

    def check(self, seq: int) -> SeqVerdict:
        """Record ``seq`` if it is new and inside (or above) the window."""
        top = self.top
        if seq > top:
            shift = seq - top
            # A jump of a whole window or more forgets everything seen before.
            self._mask = 1 if shift >= self.size else ((self._mask << shift) | 1) & self._full
            self.top = seq
            return SeqVerdict.ACCEPT
        back = top - seq
        if back >= self.size:
            return SeqVerdict.BELOW_WINDOW
        bit = 1 << back
        if self._mask & bit:
            return SeqVerdict.DUPLICATE
        self._mask |= bit
        return SeqVerdict.ACCEPT

    def seen(self, seq: int) -> bool:
        back = self.top - seq
        return 0 <= back < self.size and bool(self._mask & (1 << back))
