"""Permission decisions are the kernel's, made as the caller; root squash applies first."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.client.rpc import AuthSys
from securenfs.config import ClientRule
from securenfs.proto.constants import Stat
from tests.support.nfsserver import NfsServer


@pytest.fixture(params=[True, False], ids=["inline-metadata", "pool-metadata"])
def perm_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NfsServer]:
    """Metadata calls run on the event-loop thread or in the pool: the kernel decides either way."""
    srv = NfsServer(tmp_path, [("/squashed", ["sys"], [ClientRule(squash="root")]),
                               ("/trusted", ["sys"], [ClientRule(squash="none")])])
    srv.cfg.server.inline_metadata = request.param
    for pseudo in ("/squashed", "/trusted"):
        d = srv.paths[pseudo]
        os.chmod(d, 0o755)
        private = d / "private"
        private.mkdir()
        (private / "file.txt").write_text("only for uid 1000\n")
        os.chown(private, 1000, 1000)
        os.chmod(private, 0o700)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def _status(port: int, uid: int, path: str) -> int:
    client = await Nfs4Client.connect("127.0.0.1", port, AuthSys(uid=uid, gid=uid))
    try:
        await client.establish()
        try:
            fh = await client.lookup_path(path)
            await client.readdir_all(fh) if path.endswith("private") else await client.getattr(fh)
        except Nfs4Error as exc:
            return exc.status
        return 0
    finally:
        await client.close()


def test_kernel_refuses_a_user_without_permission(perm_server: NfsServer) -> None:
    port = perm_server.port
    # uid 2000 cannot search or list a 0700 directory of uid 1000: NFS4ERR_ACCESS from the kernel
    assert asyncio.run(_status(port, 2000, "/trusted/private")) == Stat.ACCESS
    assert asyncio.run(_status(port, 2000, "/trusted/private/file.txt")) == Stat.ACCESS
    # its owner can
    assert asyncio.run(_status(port, 1000, "/trusted/private")) == 0
    assert asyncio.run(_status(port, 1000, "/trusted/private/file.txt")) == 0


def test_root_squash_turns_root_into_the_anonymous_id(perm_server: NfsServer) -> None:
    port = perm_server.port
    # without squash root keeps its privileges ...
    assert asyncio.run(_status(port, 0, "/trusted/private")) == 0
    # ... with root_squash it is the anonymous id, and the kernel refuses it
    assert asyncio.run(_status(port, 0, "/squashed/private")) == Stat.ACCESS
    assert asyncio.run(_status(port, 1000, "/squashed/private")) == 0
