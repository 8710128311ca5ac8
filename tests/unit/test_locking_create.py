"""OPEN create modes: UNCHECKED4, GUARDED4 and the exclusive modes with their verifier."""

from __future__ import annotations

import pytest

from securenfs.locking import CreateAction, CreateMode, decide_create
from securenfs.locking.create import verifier_matches, verifier_times
from securenfs.nfs4.constants import Stat
from securenfs.nfs4.errors import Nfs4Error

VERF = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@pytest.mark.parametrize("mode", list(CreateMode))
def test_missing_file_is_created(mode: CreateMode) -> None:
    assert decide_create(mode, exists=False) is CreateAction.CREATE


def test_unchecked_opens_existing_and_guarded_refuses() -> None:
    assert decide_create(CreateMode.UNCHECKED4, exists=True) is CreateAction.OPEN_EXISTING
    with pytest.raises(Nfs4Error) as ei:
        decide_create(CreateMode.GUARDED4, exists=True)
    assert ei.value.status == Stat.EXIST


@pytest.mark.parametrize("mode", [CreateMode.EXCLUSIVE4, CreateMode.EXCLUSIVE4_1])
def test_retried_exclusive_create_succeeds_and_a_foreign_one_fails(mode: CreateMode) -> None:
    atime, mtime = verifier_times(VERF)
    # The first create stored the verifier in the times; the retry finds it.
    assert decide_create(mode, True, verifier_matches(atime, mtime, VERF)) is CreateAction.OPEN_EXISTING
    other = b"\x09" * 8
    with pytest.raises(Nfs4Error) as ei:
        decide_create(mode, True, verifier_matches(atime, mtime, other))
    assert ei.value.status == Stat.EXIST


def test_bad_mode_and_verifier() -> None:
    with pytest.raises(Nfs4Error) as ei:
        decide_create(7, exists=False)
    assert ei.value.status == Stat.INVAL
    with pytest.raises(Nfs4Error):
        verifier_times(b"short")
