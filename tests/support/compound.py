"""Run one NFSv4 operation directly: a CompoundContext over an in-memory export.

    ctx = OpContext.build(tmp_path).as_user(1000, 1000).at("dir").ctx
    await op_lookup(ctx, NameArgs(b"x"))

The context holds a real :class:`~securenfs.nfs4.service.Nfs4Service` (state tables, owner
mapper, security policy) whose one export, ``/mem`` (AUTH_SYS, no root squash unless asked),
is a :class:`~securenfs.vfs.memory.MemoryFs`; the current file handle is set as PUTFH would
set it, already past the security check of RFC 8881 §2.6.3.1 (the COMPOUND loop does that
from the op table).  Only operations that go through
:class:`~securenfs.vfs.protocol.FileSystem` can run: not OPEN, READ, WRITE or COMMIT.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from securenfs.config import ClientRule, ExportConfig
from securenfs.exports import ExportTable, SecPolicy
from securenfs.exports.table import Export
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.namespace import Namespace, Node
from securenfs.nfs4.service import Nfs4Service
from securenfs.rpc.auth import Credential
from securenfs.rpc.constants import AuthFlavor
from securenfs.vfs.handles import HandleCodec
from securenfs.vfs.memory import MemoryFs

PSEUDO = "/mem"


@dataclass
class OpContext:
    svc: Nfs4Service
    export: Export
    fs: MemoryFs
    ctx: CompoundContext

    @classmethod
    def build(cls, tmp_path: Path, *, squash: str = "none", access: str = "rw") -> OpContext:
        """``tmp_path`` is only the export's nominal path (the table checks it exists);
        nothing is written there."""
        table = ExportTable.from_config([ExportConfig(tmp_path, PSEUDO, ["sys"],
                                                      [ClientRule(squash=squash, access=access)])])
        ns = Namespace(table, SecPolicy(table), HandleCodec(os.urandom(32)), 90, make_fs=MemoryFs)
        # One worker: ctx.run hands blocking calls to it, as in the server.
        svc = Nfs4Service(ns, ThreadPoolExecutor(1), server_owner=b"unit", server_scope=b"unit", lease_time=90)
        export = table.exports[0]
        fs = ns.fs[export.export_id]
        assert isinstance(fs, MemoryFs)
        ctx = CompoundContext(svc, _sys(0, 0, ()), "127.0.0.1", None)
        built = cls(svc, export, fs, ctx)
        return built.at("")

    def as_user(self, uid: int, gid: int, groups: tuple[int, ...] = ()) -> OpContext:
        """The caller from now on: AUTH_SYS with these ids (RFC 5531 §A)."""
        self.ctx.cred = _sys(uid, gid, groups)
        return self

    def at(self, path: str) -> OpContext:
        """The current file handle: ``path`` below the export root (resolved without
        permission checks), as PUTFH of its handle leaves it."""
        self.ctx.set_cfh(Node(self.fs.fh_for_path(path), self.export, None, self.fs), checked=True)
        return self

    def save(self) -> OpContext:
        """SAVEFH: the current file handle becomes the saved one (RENAME's and LINK's source)."""
        self.ctx.sfh, self.ctx.sfh_checked = self.ctx.cfh, self.ctx.cfh_checked
        return self

    def close(self) -> None:
        self.svc.ns.close()
        self.svc.executor.shutdown(wait=True)


def _sys(uid: int, gid: int, groups: tuple[int, ...]) -> Credential:
    return Credential(AuthFlavor.AUTH_SYS, int(AuthFlavor.AUTH_SYS), uid, gid, groups, machinename="unit")
