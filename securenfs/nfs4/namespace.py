"""The objects a file handle can name: pseudo-fs directories and files inside exports.

Built on the exports library (ExportTable, SecPolicy) and one LocalFs per export.  A pseudo
node that is an export's junction is always presented as the export's root (crossing into the
export: new fsid, RFC 8881 §7.7).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from securenfs.acl.mapping import ACL_SUPPORT
from securenfs.exports.secpolicy import SecPolicy
from securenfs.exports.table import PSEUDO_FSID, Export, ExportTable, PseudoNode
from securenfs.nfs4.fattr import FsInfo, PseudoStat
from securenfs.proto.constants import FhExpire, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs.acls import supports_posix_acls
from securenfs.vfs.handles import BadHandle, HandleCodec, PseudoKey
from securenfs.vfs.local import LocalFs
from securenfs.vfs.protocol import FileSystem


@dataclass(slots=True, eq=False)
class Node:
    """The current (or saved) file handle, resolved."""

    fh: bytes
    export: Export | None = None
    pnode: PseudoNode | None = None
    fs: FileSystem | None = None

    @property
    def target(self) -> Export | PseudoNode:
        """What the security policy is asked about."""
        if self.export is not None:
            return self.export
        assert self.pnode is not None
        return self.pnode

    @property
    def is_pseudo(self) -> bool:
        return self.pnode is not None


class Namespace:
    def __init__(self, table: ExportTable, policy: SecPolicy, codec: HandleCodec, lease_time: int, *,
                 make_fs: Callable[[Export, HandleCodec], FileSystem] = LocalFs):
        self.table = table
        #: Opens one export's file system (LocalFs; unit tests of single operations pass
        #: securenfs.vfs.memory.MemoryFs).
        self._make_fs = make_fs
        self.policy = policy
        self.codec = codec
        self.lease_time = lease_time
        self.fs: dict[int, FileSystem] = {e.export_id: make_fs(e, codec) for e in table.exports}
        self.boot_ns = time.time_ns()
        #: Called by close() first (the protocol state closes its descriptors).
        self.on_close: list[Callable[[], None]] = []
        self.pseudo_fs = FsInfo(PSEUDO_FSID, lease_time, FhExpire.PERSISTENT, None, ())
        self._fsinfo = self._fsinfo_of(table)
        #: LocalFs of exports a reload replaced, closed at the next reload or at close()
        #: (calls already in flight may still use them).
        self._retired: list[FileSystem] = []

    def _fsinfo_of(self, table: ExportTable) -> dict[int, FsInfo]:
        return {e.export_id: FsInfo(e.fsid, self.lease_time, FhExpire.PERSISTENT, None,
                                    tuple(c for c in e.pseudo.split("/") if c),
                                    ACL_SUPPORT if supports_posix_acls(e.path) else 0)
                for e in table.exports}

    def replace_exports(self, table: ExportTable, policy: SecPolicy) -> None:
        """Serve a reloaded export table from the next request on.  Every export gets a new
        LocalFs (raises FsError, changing nothing, when one cannot be opened); export ids come
        from pseudo paths, so handles of kept exports stay valid and those of removed ones
        answer NFS4ERR_STALE (RFC 8881 §15.1.2: access to the object "has been revoked").
        The four references are replaced without an await between them, so no request on the
        event loop sees a mix."""
        fs: dict[int, FileSystem] = {}
        try:
            for e in table.exports:
                fs[e.export_id] = self._make_fs(e, self.codec)
        except Exception:
            for f in fs.values():
                f.close()
            raise
        for old in self._retired:
            old.close()
        self._retired = list(self.fs.values())
        self.table, self.policy, self.fs, self._fsinfo = table, policy, fs, self._fsinfo_of(table)

    def close(self) -> None:
        for cb in self.on_close:
            cb()
        self.on_close.clear()
        for fs in [*self.fs.values(), *self._retired]:
            fs.close()

    def fsinfo(self, export: Export) -> FsInfo:
        info = self._fsinfo.get(export.export_id)
        if info is None:  # removed by a reload while this request was in flight
            raise Nfs4Error(Stat.STALE, f"export {export.pseudo} is no longer served")
        return info

    # -- handles -------------------------------------------------------------------------------
    def for_pseudo(self, p: PseudoNode) -> Node:
        if p.export is not None:
            fs = self.fs[p.export.export_id]
            return Node(fs.root_fh(), p.export, None, fs)
        return Node(self.codec.pseudo(p.node_id), None, p, None)

    def root(self) -> Node:
        return self.for_pseudo(self.table.root)

    def resolve(self, fh: bytes) -> Node:
        """PUTFH: NFS4ERR_BADHANDLE for anything this server did not issue, NFS4ERR_STALE
        for a verified handle of an export or pseudo directory no longer served."""
        try:
            key = self.codec.parse(fh)
        except BadHandle as exc:
            raise Nfs4Error(Stat.BADHANDLE, str(exc)) from None
        if isinstance(key, PseudoKey):
            p = self.table.node(key.node_id)
            if p is None:
                raise Nfs4Error(Stat.STALE, f"pseudo directory {key.node_id} no longer exists")
            return self.for_pseudo(p)
        export = self.table.by_id(key.export_id)
        if export is None:
            raise Nfs4Error(Stat.STALE, f"export {key.export_id:#x} is no longer served")
        return Node(bytes(fh), export, None, self.fs[export.export_id])

    def pseudo_stat(self, p: PseudoNode) -> PseudoStat:
        return PseudoStat(p.node_id, 2 + sum(1 for _ in p.children), self.boot_ns)

    def parent_of_export_root(self, export: Export) -> Node | None:
        """LOOKUPP from an export's root: the pseudo directory above its junction."""
        parent = self.table.junction(export).parent
        return None if parent is None else self.for_pseudo(parent)
