"""Open and lock state of every client (RFC 8881 §8, §9): owners, stateids, the per-file
share reservations and byte-range locks, revocation and the courteous server.

Stateid values, the stateid table and share-reservation arithmetic come from
:mod:`securenfs.locking`; this module ties them to clients and files.

* One :class:`OpenState` per (open-owner, file); one :class:`LockState` per (lock-owner,
  file).  Lock-owner state is separate from open-owner state (RFC 8881 §8.2.4).
* Every change of a stateid's state bumps its seqid (wrapping from 0xffffffff to 1).
* Per-file changes that span an ``await`` (share check then open, lock check then grant)
  are serialized with the file's ``mutex``.
* Courteous server: a client whose lease ran out keeps its state; when another client's
  request conflicts with it, all of that client's state is revoked at once (no await in
  between) and its SEQUENCE replies carry SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED until it
  has freed every revoked stateid (FREE_STATEID, RFC 8881 §8.4.2, §18.46.3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from securenfs.locking.filecache import OpenFileCache
from securenfs.locking.locks import FileLocks, OwnerKey
from securenfs.locking.shares import FileShares
from securenfs.locking.stateids import Revoked, Stateid, StateidTable, StateKind, next_seqid

log = logging.getLogger("securenfs.state")


@dataclass(slots=True, eq=False)
class OpenOwner:
    clientid: int
    owner: bytes


@dataclass(slots=True, eq=False)
class LockOwner:
    clientid: int
    owner: bytes

    @property
    def key(self) -> OwnerKey:
        """How the byte-range lock table (securenfs.locking.locks) names this owner."""
        return (self.clientid, self.owner)


@dataclass(slots=True, eq=False)
class FileState:
    fh: bytes
    shares: FileShares = field(default_factory=FileShares)
    locks: FileLocks = field(default_factory=FileLocks)
    mutex: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # states referring to this record


@dataclass(slots=True, eq=False)
class OpenState:
    other: bytes
    clientid: int
    owner: OpenOwner
    file: FileState
    node: Any  # securenfs.nfs4.namespace.Node of the file
    creds: Any  # FsCreds the file was opened with
    access: int = 0
    deny: int = 0
    #: (access, deny) of every OPEN folded into this state, for OPEN_DOWNGRADE (§18.18.3).
    history: set[tuple[int, int]] = field(default_factory=set)
    seqid: int = 1
    revoked: Revoked = Revoked.NO
    kind: StateKind = StateKind.OPEN
    locks: list[LockState] = field(default_factory=list)

    def stateid(self) -> bytes:
        return Stateid(self.seqid, self.other).pack()


@dataclass(slots=True, eq=False)
class LockState:
    other: bytes
    clientid: int
    owner: LockOwner
    file: FileState
    open: OpenState
    seqid: int = 1
    revoked: Revoked = Revoked.NO
    kind: StateKind = StateKind.LOCK

    def stateid(self) -> bytes:
        return Stateid(self.seqid, self.other).pack()


State = OpenState | LockState


@dataclass(slots=True, eq=False)
class ClientState:
    clientid: int
    open_owners: dict[bytes, OpenOwner] = field(default_factory=dict)
    lock_owners: dict[bytes, LockOwner] = field(default_factory=dict)
    opens: dict[tuple[int, bytes], OpenState] = field(default_factory=dict)  # (id(owner), fh)
    locks: dict[tuple[int, bytes], LockState] = field(default_factory=dict)
    #: Revoked stateids the client has not freed yet.
    revoked: dict[bytes, State] = field(default_factory=dict)
    courtesy_since: float | None = None

    def __bool__(self) -> bool:
        return bool(self.opens or self.locks or self.revoked)


class StateManager:
    def __init__(self, boot_epoch: int, *, max_open_files: int = 1024,
                 lease_expired: Callable[[int], bool] | None = None):
        self.table: StateidTable[Any] = StateidTable(boot_epoch)
        self.files: dict[bytes, FileState] = {}
        self.clients: dict[int, ClientState] = {}
        #: Bounded descriptor cache, keyed by ((fh, creds), access mode).
        self.fds = OpenFileCache(max_open_files)
        #: Whether a client's lease has run out (the client table answers).
        self.lease_expired: Callable[[int], bool] = lease_expired or (lambda cid: False)
        self.revocations = 0

    # -- lookups -------------------------------------------------------------------------------
    def client(self, clientid: int) -> ClientState:
        cs = self.clients.get(clientid)
        if cs is None:
            cs = self.clients[clientid] = ClientState(clientid)
        return cs

    def file(self, fh: bytes) -> FileState:
        f = self.files.get(fh)
        if f is None:
            f = self.files[fh] = FileState(fh)
        return f

    def _release_file(self, f: FileState) -> None:
        f.users -= 1
        if f.users <= 0 and not f.shares and not f.locks and not f.mutex.locked():
            self.files.pop(f.fh, None)

    def open_owner(self, clientid: int, owner: bytes) -> OpenOwner:
        cs = self.client(clientid)
        o = cs.open_owners.get(owner)
        if o is None:
            o = cs.open_owners[owner] = OpenOwner(clientid, owner)
        return o

    def lock_owner(self, clientid: int, owner: bytes) -> LockOwner:
        cs = self.client(clientid)
        o = cs.lock_owners.get(owner)
        if o is None:
            o = cs.lock_owners[owner] = LockOwner(clientid, owner)
        return o

    def find_open(self, owner: OpenOwner, fh: bytes) -> OpenState | None:
        return self.client(owner.clientid).opens.get((id(owner), fh))

    # -- changes -------------------------------------------------------------------------------
    def new_open(self, owner: OpenOwner, f: FileState, node: Any, creds: Any, access: int, deny: int) -> OpenState:
        st = OpenState(self.table.new_other(), owner.clientid, owner, f, node, creds, access, deny, {(access, deny)})
        self.table.add(st.other, st)
        self.client(owner.clientid).opens[(id(owner), f.fh)] = st
        f.users += 1
        f.shares.set(st, access, deny)
        return st

    def upgrade(self, st: OpenState, access: int, deny: int) -> None:
        st.access |= access
        st.deny |= deny
        st.history.add((access, deny))
        st.file.shares.set(st, st.access, st.deny)
        st.seqid = next_seqid(st.seqid)

    def downgrade(self, st: OpenState, access: int, deny: int) -> None:
        st.history = {(a, d) for a, d in st.history if a & ~access == 0 and d & ~deny == 0}
        st.history.add((access, deny))
        st.access, st.deny = access, deny
        st.file.shares.set(st, access, deny)
        st.seqid = next_seqid(st.seqid)

    def lock_state(self, owner: LockOwner, op: OpenState) -> LockState:
        cs = self.client(owner.clientid)
        key = (id(owner), op.file.fh)
        ls = cs.locks.get(key)
        if ls is None:
            ls = LockState(self.table.new_other(), owner.clientid, owner, op.file, op, seqid=0)
            self.table.add(ls.other, ls)
            cs.locks[key] = ls
            op.locks.append(ls)
            op.file.users += 1
        return ls

    def _forget_lock(self, ls: LockState) -> None:
        cs = self.client(ls.clientid)
        cs.locks.pop((id(ls.owner), ls.file.fh), None)
        if ls in ls.open.locks:
            ls.open.locks.remove(ls)
        ls.file.locks.drop_owner(ls.owner.key)
        self.table.remove(ls.other)
        self._release_file(ls.file)

    def close(self, st: OpenState) -> None:
        """CLOSE: the share reservation goes; lock stateids without locks go with it."""
        cs = self.client(st.clientid)
        for ls in list(st.locks):
            self._forget_lock(ls)
        st.file.shares.remove(st)
        cs.opens.pop((id(st.owner), st.file.fh), None)
        self.table.remove(st.other)
        self._release_file(st.file)

    def free_lock(self, ls: LockState) -> None:
        self._forget_lock(ls)

    def holds_locks(self, st: OpenState) -> bool:
        return any(st.file.locks.has_locks(ls.owner.key) for ls in st.locks)

    # -- revocation and the courteous server ---------------------------------------------------
    def revoke_client(self, clientid: int, why: Revoked = Revoked.EXPIRED) -> int:
        """Revoke every open and lock of the client at once (no await inside)."""
        cs = self.clients.get(clientid)
        if cs is None:
            return 0
        n = 0
        for ls in list(cs.locks.values()):
            ls.file.locks.drop_owner(ls.owner.key)
            ls.revoked = why
            cs.revoked[ls.other] = ls
            cs.locks.pop((id(ls.owner), ls.file.fh), None)
            self._release_file(ls.file)
            n += 1
        for st in list(cs.opens.values()):
            st.file.shares.remove(st)
            st.revoked = why
            st.locks.clear()
            cs.revoked[st.other] = st
            self._release_file(st.file)
            n += 1
        cs.opens.clear()
        self.revocations += 1
        log.warning("client %#018x: %d stateid(s) revoked (%s) because another client's request conflicted "
                    "with the state of this expired client", clientid, n, why.name)
        return n

    def free_revoked(self, clientid: int, other: bytes) -> bool:
        cs = self.clients.get(clientid)
        if cs is None or other not in cs.revoked:
            return False
        del cs.revoked[other]
        self.table.remove(other)
        return True

    def revoked_pending(self, clientid: int) -> bool:
        cs = self.clients.get(clientid)
        return cs is not None and bool(cs.revoked)

    def courteous_break(self, holders: Iterable[object]) -> bool:
        """When every conflicting holder belongs to a client whose lease has expired, revoke
        those clients' state and return True (the caller retries); False otherwise."""
        cids = {getattr(h, "clientid", None) for h in holders}
        cids.discard(None)
        if not cids or not all(self.lease_expired(c) for c in cids if c is not None):
            return False
        for c in cids:
            assert c is not None
            self.revoke_client(c)
        return True

    def drop_client(self, clientid: int) -> None:
        """The client record is gone (DESTROY_CLIENTID, restart, expiry): forget its state."""
        cs = self.clients.pop(clientid, None)
        if cs is None:
            return
        for ls in list(cs.locks.values()):
            ls.file.locks.drop_owner(ls.owner.key)
            self.table.remove(ls.other)
            self._release_file(ls.file)
        for st in list(cs.opens.values()):
            st.file.shares.remove(st)
            self.table.remove(st.other)
            self._release_file(st.file)
        for other in cs.revoked:
            self.table.remove(other)

    def courtesy_clients(self) -> list[ClientState]:
        now = time.monotonic()
        out = []
        for cs in self.clients.values():
            if cs and self.lease_expired(cs.clientid):
                if cs.courtesy_since is None:
                    cs.courtesy_since = now
                    log.info("client %#018x: lease expired; its state is kept until it conflicts "
                             "(courteous server)", cs.clientid)
                out.append(cs)
            else:
                cs.courtesy_since = None
        return out

    def close_all(self) -> None:
        self.fds.close()
