"""Unit tests of the protocol side of the open/lock state: atomic revocation of a courtesy
client, and the COMPOUND's current stateid (RFC 8881 §16.2.3.1.2)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from securenfs.locking.locks import LockType
from securenfs.locking.stateids import CURRENT, Revoked, Stateid
from securenfs.nfs4.namespace import Node
from securenfs.nfs4.ops.state import set_current, stateid_of
from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.state.opens import StateManager


def test_courteous_revocation_is_all_or_nothing() -> None:
    expired = {1}
    mgr = StateManager(7, lease_expired=lambda cid: cid in expired)
    a, _ = mgr.open(1, b"a", b"fh", 3, 2)
    ls = mgr.lock(1, b"fh", LockType.WRITE_LT, 0, 10, open_sid=Stateid(0, a.other), lock_owner=b"pa")
    f = mgr.files[b"fh"]
    b = mgr.open(2, b"b", b"fh", 1, 0)[0]
    # Holder 2 is alive: no revocation.
    assert not mgr.courteous_break([b])
    # The caller's own client is never revoked for its own request.
    assert not mgr.courteous_break([a], clientid=1)
    assert mgr.courteous_break(f.shares.conflicting_holders(None, 2, 0), clientid=2)
    assert a.revoked == ls.revoked == Revoked.EXPIRED
    assert not f.locks and f.shares.holders == {b: (1, 0)}
    assert mgr.revoked_pending(1)
    assert mgr.table.status(1, Stateid(0, a.other))[0] == Stat.EXPIRED
    assert mgr.free_revoked(1, a.other) and mgr.free_revoked(1, ls.other)
    assert not mgr.revoked_pending(1)
    assert mgr.table.status(1, Stateid(0, a.other))[0] == Stat.BAD_STATEID


def _ctx() -> Any:
    return SimpleNamespace(cfh=Node(b"file-1"), stateid=None)


def test_current_stateid_replaces_the_marker_on_the_same_file_handle() -> None:
    ctx = _ctx()
    real = Stateid(3, b"r" * 12).pack()
    set_current(ctx, real)
    assert stateid_of(ctx, CURRENT.pack()).pack() == real
    # An ordinary stateid argument is taken as it is.
    assert stateid_of(ctx, bytes(16)) == Stateid(0, bytes(12))


@pytest.mark.parametrize("put", ["putfh-same-handle", "lookup", "create-clears"])
def test_changing_the_current_file_handle_clears_the_current_stateid(put: str) -> None:
    ctx = _ctx()
    set_current(ctx, Stateid(3, b"r" * 12).pack())
    if put == "create-clears":
        ctx.stateid = None
    else:
        # PUTFH of even the same handle, LOOKUP, RESTOREFH ...: a new current file handle.
        ctx.cfh = Node(b"file-1" if put == "putfh-same-handle" else b"file-2")
    with pytest.raises(Nfs4Error) as ei:
        stateid_of(ctx, CURRENT.pack())
    assert ei.value.status == Stat.BAD_STATEID


def test_restorefh_of_the_handle_the_stateid_was_set_on_brings_it_back() -> None:
    ctx = _ctx()
    real = Stateid(3, b"r" * 12).pack()
    set_current(ctx, real)
    saved = ctx.cfh
    ctx.cfh = Node(b"file-2")
    ctx.cfh = saved  # SAVEFH ... PUTFH ... RESTOREFH
    assert stateid_of(ctx, CURRENT.pack()).pack() == real


def test_request_digest_bounds_large_requests_but_sees_their_edges_and_length() -> None:
    from securenfs.state.sessions import digest

    small = bytes(range(256)) * 100
    assert digest(small) != digest(small[:-1] + b"x")  # small: every byte counts
    big = bytearray(1 << 20)
    base = digest(bytes(big))
    head, tail = bytearray(big), bytearray(big)
    head[100] = 1
    tail[-1] = 1
    assert digest(bytes(head)) != base and digest(bytes(tail)) != base
    assert digest(bytes(big) + b"\0") != base  # the length counts
    assert digest(memoryview(bytes(big))) == base
