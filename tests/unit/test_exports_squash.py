"""Root squash and all squash turn the client's ids into the ids the kernel sees."""

from __future__ import annotations

import pytest

from securenfs.exports import Access, apply_squash
from securenfs.vfs.creds import FsCreds


def acc(squash: str) -> Access:
    return Access(read_only=False, squash=squash, anonuid=65534, anongid=65533)


def test_root_squash_turns_root_into_anonymous() -> None:
    assert apply_squash(acc("root"), 0, 0, [0, 10, 0]) == FsCreds(65534, 65533, (65533, 10))
    assert apply_squash(acc("root"), 1000, 0, [5]) == FsCreds(1000, 65533, (5,))
    assert apply_squash(acc("root"), 1000, 100, [5, 6, 5]) == FsCreds(1000, 100, (5, 6))


def test_all_squash_drops_everything() -> None:
    assert apply_squash(acc("all"), 1000, 100, [5, 6]) == FsCreds(65534, 65533, ())


def test_no_squash_keeps_root() -> None:
    assert apply_squash(acc("none"), 0, 0, [0]) == FsCreds(0, 0, (0,))


def test_unknown_mode_and_bad_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        apply_squash(acc("some"), 1, 1, [])
    with pytest.raises(ValueError):
        apply_squash(acc("none"), 2**32 - 1, 1, [])
