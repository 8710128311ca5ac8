"""Persistent, unforgeable NFSv4 file handles (at most NFS4_FHSIZE = 128 bytes).

Layout (all integers big-endian)::

    file handle:    version(1) kind=1(1) export_id(4) handle_type(4, signed) len(1) kernel_handle(len) mac(16)
    pseudo handle:  version(1) kind=2(1) node_id(4) mac(16)

``mac`` is HMAC-SHA256 over every byte before it, truncated to 128 bits, keyed by a 32-byte
secret kept in ``<state_dir>/handle.key``.  Handles therefore survive restarts (the kernel
handle from ``name_to_handle_at`` is itself persistent, RFC 8881 §4.2.3) and fail-over to a
node sharing the key; a client cannot forge one, alter one, or move one to another export
(the export id is covered by the MAC).  Anything that does not verify is :class:`BadHandle`
(NFS4ERR_BADHANDLE); a valid handle of a removed file is a separate, later error
(ESTALE -> NFS4ERR_STALE) found when the kernel handle is opened.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from securenfs.vfs.errors import FsError

NFS4_FHSIZE = 128
VERSION = 1
KIND_FILE = 1
KIND_PSEUDO = 2
MAC_LEN = 16
KEY_LEN = 32
KEY_FILE = "handle.key"

_FILE_HDR = struct.Struct(">BBIiB")
_PSEUDO_BODY = struct.Struct(">BBI")
#: Longest kernel handle that still fits in NFS4_FHSIZE.
MAX_KERNEL_HANDLE = NFS4_FHSIZE - _FILE_HDR.size - MAC_LEN


class BadHandle(FsError):
    """Not a handle this server issued, or one altered since (NFS4ERR_BADHANDLE)."""

    def __init__(self, message: str):
        super().__init__(errno.EBADF, message)


class HandleKeyError(Exception):
    """The handle key file is unusable; the message names the file and the fix."""


@dataclass(slots=True, frozen=True)
class FileKey:
    export_id: int
    handle_type: int
    kernel_handle: bytes


@dataclass(slots=True, frozen=True)
class PseudoKey:
    node_id: int


def load_or_create_key(state_dir: Path) -> bytes:
    """The handle key: 32 random bytes in ``state_dir/handle.key`` (mode 0600).

    Created once, atomically: the bytes are written to a private temporary file, synced,
    then hard-linked into place, so concurrent starters agree on one key and a crash never
    leaves a short key behind.  Every node of a cluster must hold the same file.
    """
    state_dir = Path(state_dir)
    path = state_dir / KEY_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise HandleKeyError(f"{state_dir}: cannot create the state directory: {exc.strerror}") from None
    for _ in range(3):
        try:
            return _read_key(path)
        except FileNotFoundError:
            pass
        tmp = state_dir / f".{KEY_FILE}.{os.getpid()}.{os.urandom(4).hex()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, os.urandom(KEY_LEN))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another starter won; use its key
            else:
                _fsync_dir(state_dir)
        except OSError as exc:
            raise HandleKeyError(f"{path}: cannot create the file-handle key: {exc.strerror} "
                                 "(fix: make the state directory writable by the server)") from None
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return _read_key(path)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read(KEY_LEN + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise HandleKeyError(f"{path}: cannot read the file-handle key: {exc.strerror}") from None
    if len(data) != KEY_LEN:
        raise HandleKeyError(
            f"{path}: the file-handle key must be exactly {KEY_LEN} bytes, found {len(data)} "
            "(fix: restore the file from another cluster node or a backup; deleting it makes "
            "every handle clients hold invalid)")
    if st.st_mode & 0o077:
        raise HandleKeyError(
            f"{path}: the file-handle key is readable by others (mode {st.st_mode & 0o777:04o}); "
            f"anyone who reads it can forge handles (fix: chmod 600 {path})")
    return data


class HandleCodec:
    """Builds and verifies handles; thread-safe (immutable after construction)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes):
        if len(key) != KEY_LEN:
            raise ValueError(f"the handle key must be {KEY_LEN} bytes")
        self._key = bytes(key)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:MAC_LEN]

    def file(self, export_id: int, handle_type: int, kernel_handle: bytes) -> bytes:
        if len(kernel_handle) > MAX_KERNEL_HANDLE:
            raise FsError(errno.EOVERFLOW,
                          f"kernel file handle of {len(kernel_handle)} bytes does not fit an NFSv4 "
                          f"handle (limit {MAX_KERNEL_HANDLE})")
        body = _FILE_HDR.pack(VERSION, KIND_FILE, export_id, handle_type, len(kernel_handle)) + kernel_handle
        return body + self._mac(body)

    def pseudo(self, node_id: int) -> bytes:
        body = _PSEUDO_BODY.pack(VERSION, KIND_PSEUDO, node_id)
        return body + self._mac(body)

    def parse(self, fh: bytes | bytearray | memoryview) -> FileKey | PseudoKey:
        fh = bytes(fh)
        n = len(fh)
        if n < _PSEUDO_BODY.size + MAC_LEN or n > NFS4_FHSIZE:
            raise BadHandle(f"file handle of {n} bytes is not one this server issued")
        if fh[0] != VERSION:
            raise BadHandle(f"file handle version {fh[0]} is not supported")
        body, mac = fh[:-MAC_LEN], fh[-MAC_LEN:]
        kind = fh[1]
        if kind == KIND_PSEUDO:
            if len(body) != _PSEUDO_BODY.size:
                raise BadHandle("pseudo file handle has the wrong length")
        elif kind == KIND_FILE:
            if len(body) < _FILE_HDR.size or len(body) != _FILE_HDR.size + body[_FILE_HDR.size - 1]:
                raise BadHandle("file handle has the wrong length")
        else:
            raise BadHandle(f"file handle kind {kind} is unknown")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise BadHandle("file handle failed verification (altered, forged, or issued "
                            "with another handle key)")
        if kind == KIND_PSEUDO:
            return PseudoKey(_PSEUDO_BODY.unpack_from(body)[2])
        _, _, export_id, htype, _ = _FILE_HDR.unpack_from(body)
        return FileKey(export_id, htype, body[_FILE_HDR.size:])

    @staticmethod
    def export_id_of(fh: bytes) -> int | None:
        """The export id a file handle claims, without verifying it (for routing and logs)."""
        if len(fh) >= _FILE_HDR.size and fh[0] == VERSION and fh[1] == KIND_FILE:
            return int(_FILE_HDR.unpack_from(fh)[2])
        return None
