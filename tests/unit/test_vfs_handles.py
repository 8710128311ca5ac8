"""File handle format: verified, bound to an export, persistent through the key file."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from securenfs.vfs.errors import FsError
from securenfs.vfs.handles import (
    MAX_KERNEL_HANDLE,
    NFS4_FHSIZE,
    BadHandle,
    FileKey,
    HandleCodec,
    HandleKeyError,
    PseudoKey,
    load_or_create_key,
)

KH = bytes(range(1, 13))


def test_round_trip_file_and_pseudo() -> None:
    c = HandleCodec(b"k" * 32)
    fh = c.file(1234, 0x81, KH)
    assert len(fh) <= NFS4_FHSIZE
    assert c.parse(fh) == FileKey(1234, 0x81, KH)
    assert c.parse(c.pseudo(77)) == PseudoKey(77)
    assert HandleCodec.export_id_of(fh) == 1234
    # negative kernel handle types survive
    assert c.parse(c.file(5, -3, KH)) == FileKey(5, -3, KH)


@pytest.mark.parametrize("kind", ["file", "pseudo"])
def test_every_flipped_byte_is_refused(kind: str) -> None:
    c = HandleCodec(os.urandom(32))
    fh = c.file(42, 1, KH) if kind == "file" else c.pseudo(9)
    for i in range(len(fh)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(fh)
            bad[i] ^= mask
            with pytest.raises(BadHandle):
                c.parse(bytes(bad))


def test_truncated_extended_and_foreign_handles_are_refused() -> None:
    c = HandleCodec(os.urandom(32))
    fh = c.file(42, 1, KH)
    for bad in (b"", fh[:-1], fh + b"\0", fh[:10], b"\x01" * 200):
        with pytest.raises(BadHandle):
            c.parse(bad)
    with pytest.raises(BadHandle, match="verification"):
        HandleCodec(os.urandom(32)).parse(fh)  # another server's key


def test_export_id_cannot_be_swapped() -> None:
    c = HandleCodec(os.urandom(32))
    a = c.file(100, 1, KH)
    forged = a[:2] + (200).to_bytes(4, "big") + a[6:]
    with pytest.raises(BadHandle):
        c.parse(forged)


def test_oversized_kernel_handle_is_an_error_not_a_long_handle() -> None:
    c = HandleCodec(os.urandom(32))
    assert len(c.file(1, 1, b"x" * MAX_KERNEL_HANDLE)) == NFS4_FHSIZE
    with pytest.raises(FsError):
        c.file(1, 1, b"x" * (MAX_KERNEL_HANDLE + 1))


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    k1 = load_or_create_key(state)
    assert len(k1) == 32
    mode = stat.S_IMODE(os.stat(state / "handle.key").st_mode)
    assert mode == 0o600
    assert load_or_create_key(state) == k1
    # a restarted server (new codec, same key file) accepts the old handles
    fh = HandleCodec(k1).file(7, 1, KH)
    assert HandleCodec(load_or_create_key(state)).parse(fh) == FileKey(7, 1, KH)
    assert [p.name for p in state.iterdir()] == ["handle.key"]  # no temporary files left


def test_concurrent_starters_agree_on_one_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(load_or_create_key(tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1


def test_damaged_or_exposed_key_files_are_refused_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "handle.key").write_bytes(b"short")
    os.chmod(tmp_path / "handle.key", 0o600)
    with pytest.raises(HandleKeyError, match="exactly 32 bytes"):
        load_or_create_key(tmp_path)
    (tmp_path / "handle.key").write_bytes(os.urandom(32))
    os.chmod(tmp_path / "handle.key", 0o644)
    with pytest.raises(HandleKeyError, match="chmod 600"):
        load_or_create_key(tmp_path)
