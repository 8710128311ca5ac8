"""LOOKUP through a symbolic link answers NFS4ERR_SYMLINK (RFC 8881 §18.15.3): the server
never follows links, the client resolves them with READLINK."""

from __future__ import annotations

import asyncio
import os

from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.client.rpc import AuthSys
from securenfs.proto.constants import Stat
from tests.support.nfsserver import NfsServer


def test_lookup_through_a_symlink_is_nfs4err_symlink(nfs_server: NfsServer) -> None:
    os.symlink("/etc", nfs_server.paths["/a"] / "escape")
    (nfs_server.paths["/a"] / "dir").mkdir()
    os.symlink("dir", nfs_server.paths["/a"] / "inside")

    async def main() -> tuple[int, int]:
        c = await Nfs4Client.connect("127.0.0.1", nfs_server.port, AuthSys(uid=0, gid=0))
        try:
            await c.establish()
            out = []
            for path in ("/a/escape/passwd", "/a/inside/x"):
                try:
                    await c.lookup_path(path)
                    out.append(0)
                except Nfs4Error as exc:
                    out.append(exc.status)
            return out[0], out[1]
        finally:
            await c.close()

    assert asyncio.run(main()) == (Stat.SYMLINK, Stat.SYMLINK)
