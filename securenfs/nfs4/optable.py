"""The operation table: one entry per NFSv4.1 operation (RFC 8881 §18).

Each entry says what the COMPOUND loop must check before the handler runs, so handlers
never repeat those checks:

* ``needs_fh``: NFS4ERR_NOFILEHANDLE without a current file handle;
* ``sec``: how the operation takes part in the security check of RFC 8881 §2.6.3.1;
* ``alone``: may be sent without SEQUENCE (then it must be the only operation, §2.10.6.2
  / §18.46.3).

Adding an operation is one entry here plus a handler; an entry without a handler answers
NFS4ERR_NOTSUPP (and, since its arguments cannot be decoded, ends the COMPOUND: §15.2).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from securenfs.nfs4 import xdr4
from securenfs.nfs4.ops import attrs, fh, io, mutate, readdir, secinfo, session, state
from securenfs.proto.constants import Op


class Sec(enum.Enum):
    NONE = "none"  # does not use the current file handle
    PUTFH = "putfh"  # sets it; the check depends on the next op (§2.6.3.1.1)
    CHECK = "check"  # uses it: checked unless already checked
    LOOKUP = "lookup"  # checks the looked-up object (§2.6.3.1.1.3)
    LOOKUPP = "lookupp"  # checks the parent (§2.6.3.1.1.4)
    SECINFO = "secinfo"  # never WRONGSEC (§2.6.3.1.1.5); consumes the file handle
    SAVEFH = "savefh"  # moves the handle and its checked state (§2.6.3.1.1.1)


Handler = Callable[[Any, Any], Awaitable[Any]]


@dataclass(slots=True, frozen=True)
class OpSpec:
    op: Op
    handler: Handler | None
    args: type | None
    needs_fh: bool = False
    sec: Sec = Sec.NONE
    alone: bool = False


#: Ops after which a put-filehandle op defers its security check (RFC 8881 §2.6.3.1.1.1-5).
DEFERS_CHECK = frozenset({Op.PUTFH, Op.PUTPUBFH, Op.PUTROOTFH, Op.RESTOREFH, Op.SAVEFH, Op.LOOKUP,
                          Op.LOOKUPP, Op.OPEN, Op.SECINFO, Op.SECINFO_NO_NAME})


def _spec(op: Op, handler: Handler | None = None, *, needs_fh: bool = False, sec: Sec = Sec.NONE,
          alone: bool = False) -> OpSpec:
    args = xdr4.ARGS.get(op) if handler is not None else None
    if handler is not None and args is None:
        raise RuntimeError(f"{op.name} has a handler but no argument decoder")
    return OpSpec(op, handler, args, needs_fh, sec, alone)


_BUILT = [
    _spec(Op.ACCESS, attrs.op_access, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.GETATTR, attrs.op_getattr, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.GETFH, fh.op_getfh, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.LOOKUP, fh.op_lookup, needs_fh=True, sec=Sec.LOOKUP),
    _spec(Op.LOOKUPP, fh.op_lookupp, needs_fh=True, sec=Sec.LOOKUPP),
    _spec(Op.NVERIFY, attrs.op_nverify, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.PUTFH, fh.op_putfh, sec=Sec.PUTFH),
    _spec(Op.PUTPUBFH, fh.op_putrootfh, sec=Sec.PUTFH),
    _spec(Op.PUTROOTFH, fh.op_putrootfh, sec=Sec.PUTFH),
    _spec(Op.READDIR, readdir.op_readdir, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.READLINK, readdir.op_readlink, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.RESTOREFH, fh.op_restorefh, sec=Sec.PUTFH),
    _spec(Op.SAVEFH, fh.op_savefh, needs_fh=True, sec=Sec.SAVEFH),
    _spec(Op.SECINFO, secinfo.op_secinfo, needs_fh=True, sec=Sec.SECINFO),
    _spec(Op.VERIFY, attrs.op_verify, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.BIND_CONN_TO_SESSION, session.op_bind_conn, alone=True),
    _spec(Op.EXCHANGE_ID, session.op_exchange_id, alone=True),
    _spec(Op.CREATE_SESSION, session.op_create_session, alone=True),
    _spec(Op.DESTROY_SESSION, session.op_destroy_session, alone=True),
    _spec(Op.SECINFO_NO_NAME, secinfo.op_secinfo_no_name, needs_fh=True, sec=Sec.SECINFO),
    # SEQUENCE is evaluated by the COMPOUND loop itself (it owns the slot and the reply cache).
    OpSpec(Op.SEQUENCE, None, xdr4.SequenceArgs),
    _spec(Op.DESTROY_CLIENTID, session.op_destroy_clientid, alone=True),
    _spec(Op.RECLAIM_COMPLETE, session.op_reclaim_complete),
    # core II: state, I/O and namespace changes
    _spec(Op.OPEN, state.op_open, needs_fh=True, sec=Sec.NONE),  # checks the directory itself
    _spec(Op.CLOSE, state.op_close, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.OPEN_DOWNGRADE, state.op_open_downgrade, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.TEST_STATEID, state.op_test_stateid),
    _spec(Op.FREE_STATEID, state.op_free_stateid),
    _spec(Op.LOCK, state.op_lock, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.LOCKT, state.op_lockt, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.LOCKU, state.op_locku, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.READ, io.op_read, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.WRITE, io.op_write, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.COMMIT, io.op_commit, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.SETATTR, mutate.op_setattr, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.CREATE, mutate.op_create, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.REMOVE, mutate.op_remove, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.RENAME, mutate.op_rename, needs_fh=True, sec=Sec.CHECK),
    _spec(Op.LINK, mutate.op_link, needs_fh=True, sec=Sec.CHECK),
]

#: Every NFSv4.1 operation number; those not built answer NFS4ERR_NOTSUPP (docs/nfs4.md).
OPTABLE: dict[int, OpSpec] = {op: OpSpec(op, None, None) for op in Op if op != Op.ILLEGAL}
OPTABLE.update({s.op: s for s in _BUILT})

NOT_BUILT: tuple[Op, ...] = tuple(sorted(op for op, s in OPTABLE.items() if s.handler is None and op != Op.SEQUENCE))
