"""READ, WRITE and COMMIT (RFC 8881 §18.22, §18.32, §18.3).

I/O goes through a descriptor borrowed from the bounded open-file cache: the one the open
was made with (opened as the user who opened the file), reopened as that user if it was
evicted.  The anonymous and read-bypass stateids (§8.2.3) use a descriptor opened as the
caller, so the kernel checks permission on every such call; the anonymous stateid still
respects share reservations (DENY_READ / DENY_WRITE of other opens).
"""

from __future__ import annotations

import os
import stat as stat_mod
from typing import Any

from securenfs.locking.stateids import special_kind
from securenfs.nfs4 import fattr
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.ops.state import client_id, stateid_of
from securenfs.nfs4.xdr4 import (
    UNSTABLE4,
    CommitArgs,
    CommitRes,
    ReadArgs,
    ReadRes,
    WriteArgs,
    WriteRes,
)
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs import fileops
from securenfs.vfs.creds import ROOT

#: Largest offset the kernel accepts (off_t is signed 64-bit).
_MAX_OFFSET = (1 << 63) - 1


async def _io_fd(ctx: CompoundContext, raw: bytes, write: bool) -> tuple[Any, tuple[Any, ...], Any]:
    """(file node, fd-cache key, opener) for a READ or WRITE with stateid ``raw``."""
    node = ctx.require_cfh()
    if node.pnode is not None:
        raise Nfs4Error(Stat.ISDIR, "I/O on a pseudo directory")
    assert node.export is not None and node.fs is not None
    if write and await ctx.read_only(node.export):
        raise Nfs4Error(Stat.ROFS, f"{node.export.pseudo} is exported read-only")
    sid = stateid_of(ctx, raw)
    kind = special_kind(sid)
    mgr = ctx.svc.state
    rec = ctx.svc.recovery
    if rec is not None and rec.grace.check_io(kind is not None):
        # RFC 8881 §8.4.2.1: I/O with a stateid reclaimed in this grace period cannot conflict
        # with another reclaim; I/O outside any open (special stateids) waits for grace to end.
        raise Nfs4Error(Stat.GRACE, "grace period: I/O with a special stateid waits until it ends")
    if kind is not None:
        # Anonymous (all zeros) or read-bypass (all ones): I/O outside any open.
        creds = await ctx.creds_for(node.export)
        mgr.check_io(client_id(ctx), sid, node.fh, write)
        acc = os.O_WRONLY if write else os.O_RDONLY
        st = await ctx.run(node.fs.stat, node.fh)
        if stat_mod.S_ISDIR(st.st_mode):
            raise Nfs4Error(Stat.ISDIR, "I/O on a directory")
        if not stat_mod.S_ISREG(st.st_mode):
            raise Nfs4Error(Stat.INVAL, "I/O on something that is not a regular file")
        fs, fh = node.fs, node.fh
        return node, ((fh, creds), acc), lambda: fileops.open_fh(fs, fh, acc, creds)
    op = mgr.check_io(client_id(ctx), sid, node.fh, write)
    assert op is not None
    if write:
        acc = os.O_WRONLY if op.access == 2 else os.O_RDWR
    else:
        # A write-only open may still read when the user may (the kernel decides).
        acc = os.O_RDWR if op.access == 3 else os.O_RDONLY
    fs, fh, creds = op.node.fs, op.node.fh, op.creds
    return node, ((fh, creds), acc), lambda: fileops.open_fh(fs, fh, acc, creds)


async def op_read(ctx: CompoundContext, a: ReadArgs) -> ReadRes:
    node, key, opener = await _io_fd(ctx, a.stateid, False)
    if a.offset > _MAX_OFFSET:
        return ReadRes(0, True, b"")  # past any possible end of file
    # Over maxread is capped, not refused (§18.22.3); so is a range passing off_t's end.
    count = min(a.count, fattr.MAX_READ, _MAX_OFFSET - a.offset)
    data, eof = await ctx.run(_read, ctx.svc.state.fds, key, opener, count, a.offset)
    metrics = ctx.svc.metrics
    if metrics is not None and node.export is not None:
        metrics.export_io(node.export.pseudo).read.inc(len(data))
    return ReadRes(0, eof, data)


def _read(cache: Any, key: Any, opener: Any, count: int, offset: int) -> tuple[bytes, bool]:
    with cache.use(*key, opener) as fd:
        return fileops.pread(fd, count, offset)


async def op_write(ctx: CompoundContext, a: WriteArgs) -> WriteRes:
    node, key, opener = await _io_fd(ctx, a.stateid, True)
    data = a.data
    if len(data) > fattr.MAX_WRITE:
        data = data[: fattr.MAX_WRITE]  # a short write the client continues (§18.32.3)
    # The file may grow to maxfilesize (2**63 - 1) bytes; the kernel refuses an end of 2**63
    # (loff_t overflow) with EINVAL, so the bound is checked here (§18.32.3 NFS4ERR_FBIG).
    if a.offset + len(data) > _MAX_OFFSET:
        raise Nfs4Error(Stat.FBIG, f"write at {a.offset} passes the largest file size")
    n = await ctx.run(_write, ctx.svc.state.fds, key, opener, data, a.offset, a.stable)
    metrics = ctx.svc.metrics
    if metrics is not None and node.export is not None:
        metrics.export_io(node.export.pseudo).written.inc(n)
    return WriteRes(0, n, a.stable, ctx.svc.write_verifier)


def _write(cache: Any, key: Any, opener: Any, data: Any, offset: int, stable: int) -> int:
    with cache.use(*key, opener) as fd:
        return fileops.pwrite(fd, data, offset, stable)


async def op_commit(ctx: CompoundContext, a: CommitArgs) -> CommitRes:
    node = ctx.require_cfh()
    if node.pnode is not None:
        raise Nfs4Error(Stat.ISDIR, "COMMIT of a pseudo directory")
    assert node.fs is not None
    if a.count and a.offset + a.count > (1 << 64) - 1:
        raise Nfs4Error(Stat.INVAL, "COMMIT range passes the largest offset")
    fs, fh = node.fs, node.fh
    st = await ctx.run(fs.stat, fh)
    if not stat_mod.S_ISREG(st.st_mode):
        raise Nfs4Error(Stat.ISDIR if stat_mod.S_ISDIR(st.st_mode) else Stat.INVAL, "COMMIT of a non-file")
    # fsync needs a real descriptor but grants nothing: opened with the server's identity.
    await ctx.run(_commit, ctx.svc.state.fds, ((fh, "commit"), os.O_RDONLY), lambda: fileops.open_fh(fs, fh, os.O_RDONLY, ROOT))
    return CommitRes(0, ctx.svc.write_verifier)


def _commit(cache: Any, key: Any, opener: Any) -> None:
    with cache.use(*key, opener) as fd:
        fileops.fsync(fd)


__all__ = ["UNSTABLE4", "op_commit", "op_read", "op_write"]
