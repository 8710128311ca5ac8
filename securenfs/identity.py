"""The server's identity: server_owner, server_scope and the boot epoch.

server_owner and server_scope (RFC 8881 §2.10.4) come from the configuration and must be
identical on every node that can serve the same clients; they are never derived from the host
name (a failover node has another host name but is the same server).  When the configuration
leaves them out, a random identity is created once and kept in the state directory, so a
restart is still the same server.

The boot epoch is a counter persisted in the state directory and incremented at every start;
client ids and stateids carry it so that ids from before a restart are recognised as stale,
and the write verifier changes with it.
"""

from __future__ import annotations

import logging
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("securenfs.identity")


@dataclass(slots=True, frozen=True)
class ServerIdentity:
    server_owner: str
    server_scope: str
    boot_epoch: int

    @property
    def write_verifier(self) -> bytes:
        """8 bytes that change on every start (RFC 8881 §18.32.3)."""
        return struct.pack(">Q", self.boot_epoch)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class IdentityError(Exception):
    pass


def load_identity(state_dir: Path, server_owner: str | None, server_scope: str | None,
                  *, bump_epoch: bool = True) -> ServerIdentity:
    """Read (and on a start, advance) the persisted identity in ``state_dir``."""
    id_file = state_dir / "server-id"
    if server_owner is None:
        try:
            server_owner = id_file.read_text().strip()
        except FileNotFoundError:
            server_owner = ""
        if not server_owner:
            server_owner = "securenfs-" + secrets.token_hex(8)
            _write_atomic(id_file, server_owner.encode() + b"\n")
            log.warning("server.server_owner is not set: created the identity %r in %s; set server_owner "
                        "and server_scope explicitly (the same on every cluster node)", server_owner, id_file)
    if server_scope is None:
        server_scope = server_owner
    epoch_file = state_dir / "boot-epoch"
    try:
        text = epoch_file.read_text().strip()
        epoch = int(text) if text else 0
    except FileNotFoundError:
        epoch = 0
    except ValueError:
        raise IdentityError(f"{epoch_file} is corrupt (not a number); restore it from backup, or remove it "
                            "only if no client state must survive this restart") from None
    if bump_epoch:
        epoch = (epoch + 1) & 0xFFFFFFFF or 1
        _write_atomic(epoch_file, f"{epoch}\n".encode())
    return ServerIdentity(server_owner, server_scope, epoch)
