from __future__ import annotations

from pathlib import Path

import pytest

from securenfs.identity import IdentityError, load_identity


def test_configured_identity_and_epoch_advances(tmp_path: Path) -> None:
    a = load_identity(tmp_path, "cluster-1", "example.com")
    b = load_identity(tmp_path, "cluster-1", "example.com")
    assert (a.server_owner, a.server_scope) == ("cluster-1", "example.com")
    assert b.boot_epoch == a.boot_epoch + 1
    assert a.write_verifier != b.write_verifier
    assert not (tmp_path / "server-id").exists()  # nothing invented when configured


def test_generated_identity_is_kept(tmp_path: Path) -> None:
    a = load_identity(tmp_path, None, None)
    b = load_identity(tmp_path, None, None)
    assert a.server_owner == b.server_owner and a.server_owner.startswith("securenfs-")
    assert a.server_scope == a.server_owner
    assert (tmp_path / "server-id").stat().st_mode & 0o777 == 0o600


def test_corrupt_epoch_is_reported(tmp_path: Path) -> None:
    (tmp_path / "boot-epoch").write_text("garbage")
    with pytest.raises(IdentityError, match="corrupt"):
        load_identity(tmp_path, "x", None)
