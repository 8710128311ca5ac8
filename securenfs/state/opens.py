"""Open and lock state of every client (RFC 8881 §8, §9): the one state manager.

Owners, stateids, per-file share reservations and byte-range locks, revocation and the
courteous server all live here; the protocol handlers (:mod:`securenfs.nfs4.ops.state`,
:mod:`securenfs.nfs4.ops.io`) decode arguments, do the file-system work and call one method
per operation.  Stateid values, the stateid table, share arithmetic, lock ranges and the
descriptor cache are the primitives of :mod:`securenfs.locking`.

* One :class:`OpenState` per (open-owner, file); one :class:`LockState` per (lock-owner,
  file).  Lock-owner state is separate from open-owner state (RFC 8881 §8.2.4, §9.1).
* Every change of a stateid's state bumps its seqid (wrapping from 0xffffffff to 1).
* Every method runs on the event-loop thread and none awaits, so each is one atomic state
  change.  OPEN checks shares, awaits the file system (create, open, truncate), then
  records: it holds :meth:`StateManager.serialized` for the file across that await.
* Leases are the client table's (``lease_expired``); there is no second lease clock here.
* Courteous server: a client whose lease ran out keeps its state; when another client's
  request conflicts with it, all of that client's state is revoked at once (no await in
  between) and its SEQUENCE replies carry SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED until it
  has freed every revoked stateid (FREE_STATEID, RFC 8881 §8.4.2, §18.46.3).  A test (LOCKT)
  ignores an expired client's locks without revoking them.
* Kernel locks (``kernel_locks``): every granted byte-range lock is also taken as an OFD
  lock (:mod:`securenfs.locking.ofd`) on a descriptor held per (lock-owner, file), before
  the answer, and every unlock, split, downgrade and release follows the NFS lock table on
  that descriptor, so the kernel's view is the NFS table's (within the kernel's byte space).
  A lock that a local process holds refuses an NFS LOCK (NFS4ERR_DENIED, owner
  :data:`HOST_OWNER`).  Opening that descriptor is file-system work the state manager does
  not do itself (it never awaits): :meth:`StateManager.lock` raises :class:`NeedLockFd` and
  the caller opens one and calls again.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from securenfs.locking import ofd
from securenfs.locking.filecache import OpenFileCache
from securenfs.locking.locks import (
    FileLocks,
    LockConflict,
    LockDenied,
    LockType,
    OwnerKey,
    lock_range,
    lock_type,
)
from securenfs.locking.shares import FileShares, achievable, check_open, validate_share
from securenfs.locking.stateids import (
    Revoked,
    Special,
    Stateid,
    StateidTable,
    StateKind,
    next_seqid,
    special_kind,
)
from securenfs.proto.constants import SeqStatus, Stat
from securenfs.proto.errors import Nfs4Error

log = logging.getLogger("securenfs.state")

#: Opaque owner strings are at most NFS4_OPAQUE_LIMIT bytes (RFC 8881 §3.2).
OWNER_LIMIT: Final = 1024
OPEN_KINDS: Final = frozenset({StateKind.OPEN})
LOCK_KINDS: Final = frozenset({StateKind.LOCK})
IO_KINDS: Final = frozenset({StateKind.OPEN, StateKind.LOCK})

StateidLike = Stateid | bytes | bytearray | memoryview

#: The owner NFS4ERR_DENIED names for a lock that is not an NFS client's (a local process,
#: Samba, another node of a cluster file system), with client id 0.  " pid=N" follows when
#: the kernel names the holder (a classic POSIX lock); an OFD lock's holder is not known.
HOST_OWNER: Final = b"securenfs:host-lock"
#: The owner NFS4ERR_DENIED names when the client holds ``max_lock_ranges`` ranges already.
LIMIT_OWNER: Final = b"securenfs:too-many-locks"
DEFAULT_MAX_LOCK_FILES: Final = 512
DEFAULT_MAX_LOCK_RANGES: Final = 10000
#: SEQ4_STATUS bits by why a stateid was revoked (RFC 8881 §18.46.3).
_REVOKED_FLAG: Final = {Revoked.EXPIRED: int(SeqStatus.EXPIRED_ALL_STATE_REVOKED),
                        Revoked.ADMIN: int(SeqStatus.ADMIN_STATE_REVOKED)}
#: A LOCK adds at most two ranges to its owner's list (a lock inside a lock of the other
#: type leaves a piece on each side); a LOCKU at most one (it splits one range).
_LOCK_GROWTH: Final = 2


class NeedLockFd(Exception):
    """LOCK (or LOCKT) needs a descriptor of the file for the kernel's byte-range locks and
    the state manager does not open files: the caller opens one (for reading and writing
    when ``writable``, else for reading) and calls again with it."""

    def __init__(self, writable: bool):
        super().__init__("a lock descriptor is needed")
        self.writable = writable


def host_conflict(kc: ofd.KernelConflict) -> LockConflict:
    """LOCK4denied for a lock the kernel reports and no NFS client holds."""
    owner = HOST_OWNER + (f" pid={kc.pid}".encode() if kc.pid > 0 else b"")
    return LockConflict(kc.start, kc.length, kc.locktype, 0, owner)


def _owner_bytes(owner: bytes) -> bytes:
    if len(owner) > OWNER_LIMIT:
        raise Nfs4Error(Stat.INVAL, f"owner of {len(owner)} bytes (limit {OWNER_LIMIT})")
    return bytes(owner)


@dataclass(slots=True, eq=False)
class OpenOwner:
    clientid: int
    owner: bytes
    #: Open stateids of this owner (one per file); the owner is forgotten at zero.
    nopens: int = 0


@dataclass(slots=True, eq=False)
class LockOwner:
    clientid: int
    owner: bytes
    #: Lock stateids of this owner (one per file); the owner is forgotten at zero.
    nstates: int = 0

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
    users: int = 0  # states referring to this record, and OPENs waiting for its mutex


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
    #: The descriptor that holds this owner's locks on the file in the kernel (-1: none).
    kfd: int = -1
    #: Whether ``kfd`` is open for writing (a kernel write lock needs that).
    kwrite: bool = False

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
    #: Byte ranges this client's lock-owners hold, on every file (bounded by max_lock_ranges).
    nranges: int = 0

    def __bool__(self) -> bool:
        return bool(self.opens or self.locks or self.revoked)


class StateManager:
    def __init__(self, boot_epoch: int, *, max_open_files: int = 1024,
                 lease_expired: Callable[[int], bool] | None = None, kernel_locks: bool = False,
                 max_lock_files: int = DEFAULT_MAX_LOCK_FILES, max_lock_ranges: int = DEFAULT_MAX_LOCK_RANGES):
        self.table: StateidTable[Any] = StateidTable(boot_epoch)
        self.files: dict[bytes, FileState] = {}
        self.clients: dict[int, ClientState] = {}
        #: Bounded descriptor cache, keyed by ((fh, creds), access mode).
        self.fds = OpenFileCache(max_open_files)
        #: Whether a client's lease has run out (the client table answers).
        self.lease_expired: Callable[[int], bool] = lease_expired or (lambda cid: False)
        self.revocations = 0
        #: Called with the client id after each revoke_client (the service drops the client's
        #: stable record: RFC 8881 §8.4.3, revoked state cannot be reclaimed).
        self.revoke_listeners: list[Callable[[int], None]] = []
        #: Mirror byte-range locks into the kernel (``server.kernel_locks``).
        self.kernel_locks = kernel_locks
        #: At most this many lock descriptors (lock-owner and file pairs) at once
        #: (``server.max_lock_files``); they count against the descriptor cache's limit too.
        self.max_lock_files = max_lock_files
        self.lock_fds = 0
        self._kfds: set[int] = set()
        #: Byte ranges one client may hold on all files together (``server.max_lock_ranges``):
        #: the NFS lock table and the kernel's hold one record per range.
        self.max_lock_ranges = max_lock_ranges

    # -- records -------------------------------------------------------------------------------
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
        if (f.users <= 0 and not f.shares and not f.locks and not f.mutex.locked()
                and self.files.get(f.fh) is f):
            del self.files[f.fh]

    def open_owner(self, clientid: int, owner: bytes) -> OpenOwner:
        cs = self.client(clientid)
        owner = _owner_bytes(owner)
        o = cs.open_owners.get(owner)
        if o is None:
            o = cs.open_owners[owner] = OpenOwner(clientid, owner)
        return o

    def find_open(self, clientid: int, owner: bytes, fh: bytes) -> OpenState | None:
        cs = self.clients.get(clientid)
        o = cs.open_owners.get(bytes(owner)) if cs is not None else None
        return cs.opens.get((id(o), fh)) if cs is not None and o is not None else None

    def lookup(self, clientid: int, sid: StateidLike, kinds: frozenset[StateKind] | None,
               fh: bytes | None = None) -> Any:
        """The open or lock state a (non-special) stateid names, checked in the order of
        RFC 8881 §8.2.4; with ``fh`` it must be a stateid of that file (NFS4ERR_BAD_STATEID)."""
        s = Stateid.coerce(sid)
        if special_kind(s) is not None:
            raise Nfs4Error(Stat.BAD_STATEID, "a special stateid cannot be used here")
        st = self.table.lookup(clientid, s, kinds)
        if fh is not None and st.file.fh != fh:
            raise Nfs4Error(Stat.BAD_STATEID, "the stateid is for another file than the current file handle")
        return st

    # -- OPEN, OPEN_DOWNGRADE, CLOSE (RFC 8881 §18.16, §18.18, §18.2) ---------------------------
    @asynccontextmanager
    async def serialized(self, fh: bytes) -> AsyncIterator[FileState]:
        """Hold the file's mutex across an OPEN's await (check shares, create/open/truncate
        in the file system, record): two OPENs of one file cannot both pass the check."""
        f = self.file(fh)
        f.users += 1  # keep the record while waiting for the mutex
        try:
            async with f.mutex:
                yield f
        finally:
            self._release_file(f)

    def _share_check(self, clientid: int, f: FileState, holder: OpenState | None, access: int, deny: int) -> None:
        if f.shares.conflicts(holder, access, deny):
            # Conflicts only with expired clients: revoke them, then the check passes.
            self.courteous_break(f.shares.conflicting_holders(holder, access, deny), clientid)
            check_open(f.shares, holder, access, deny)

    def check_open(self, clientid: int, owner: bytes, fh: bytes, access: int, deny: int) -> None:
        """Would :meth:`open` succeed?  NFS4ERR_SHARE_DENIED / NFS4ERR_INVAL if not; expired
        conflicting clients are revoked here (RFC 8881 §9.7)."""
        a, d = validate_share(access, deny)
        f = self.files.get(fh)
        if f is None:
            return
        existing = self.find_open(clientid, owner, fh)
        if existing is not None:
            a, d = a | existing.access, d | existing.deny
        self._share_check(clientid, f, existing, a, d)

    def open(self, clientid: int, owner: bytes, fh: bytes, access: int, deny: int, node: Any = None,
             creds: Any = None) -> tuple[OpenState, bool]:
        """The share-reservation part of OPEN: (state, whether it is new).  A second OPEN by
        the same open-owner upgrades its stateid to the union of the modes and bumps its
        seqid; the first returns seqid 1."""
        a, d = validate_share(access, deny)
        o = self.open_owner(clientid, owner)
        f = self.file(fh)
        cs = self.client(clientid)
        existing = cs.opens.get((id(o), fh))
        try:
            self._share_check(clientid, f, existing, a | (existing.access if existing else 0),
                              d | (existing.deny if existing else 0))
        except Nfs4Error:
            if not o.nopens:
                cs.open_owners.pop(o.owner, None)
            f.users += 1
            self._release_file(f)
            raise
        if existing is not None:
            existing.access |= a
            existing.deny |= d
            existing.history.add((a, d))
            f.shares.set(existing, existing.access, existing.deny)
            existing.seqid = next_seqid(existing.seqid)
            return existing, False
        st = OpenState(self.table.new_other(), clientid, o, f, node, creds, a, d, {(a, d)})
        self.table.add(st.other, st)
        cs.opens[(id(o), fh)] = st
        o.nopens += 1
        f.users += 1
        f.shares.set(st, a, d)
        return st, True

    def open_downgrade(self, clientid: int, sid: StateidLike, fh: bytes | None, access: int,
                       deny: int) -> OpenState:
        """OPEN_DOWNGRADE: the new modes must be the union of some of the OPENs this owner
        did on the file, else NFS4ERR_INVAL (RFC 8881 §18.18.3)."""
        st: OpenState = self.lookup(clientid, sid, OPEN_KINDS, fh)
        a, d = validate_share(access, deny)
        if a & ~st.access or d & ~st.deny or not achievable((a, d), st.history):
            raise Nfs4Error(Stat.INVAL, f"access {a:#x}/deny {d:#x} is not a union of this owner's OPENs")
        st.history = {(ha, hd) for ha, hd in st.history if ha & ~a == 0 and hd & ~d == 0}
        st.history.add((a, d))
        st.access, st.deny = a, d
        st.file.shares.set(st, a, d)
        st.seqid = next_seqid(st.seqid)
        return st

    def close(self, clientid: int, sid: StateidLike, fh: bytes | None) -> OpenState:
        """CLOSE: the share reservation goes, and the open's lock stateids with it.
        NFS4ERR_LOCKS_HELD while locks are held through the open (RFC 8881 §18.2.4 lets the
        server refuse; the client LOCKUs first)."""
        st: OpenState = self.lookup(clientid, sid, OPEN_KINDS, fh)
        if self.holds_locks(st):
            raise Nfs4Error(Stat.LOCKS_HELD, "byte-range locks of this open are still held (LOCKU them first)")
        cs = self.client(st.clientid)
        for ls in list(st.locks):
            self._forget_lock(ls)
        st.file.shares.remove(st)
        cs.opens.pop((id(st.owner), st.file.fh), None)
        self._owner_done(cs, st.owner)
        self.table.remove(st.other)
        self._release_file(st.file)
        return st

    def _owner_done(self, cs: ClientState, o: OpenOwner) -> None:
        o.nopens -= 1
        if o.nopens <= 0 and cs.open_owners.get(o.owner) is o:
            del cs.open_owners[o.owner]

    def holds_locks(self, st: OpenState) -> bool:
        return any(st.file.locks.has_locks(ls.owner.key) for ls in st.locks)

    # -- LOCK, LOCKT, LOCKU (RFC 8881 §18.10-18.12) --------------------------------------------
    def lock(self, clientid: int, fh: bytes | None, locktype: int, offset: int, length: int, *,
             open_sid: StateidLike | None = None, lock_owner: bytes | None = None,
             lock_sid: StateidLike | None = None, kfd: int | None = None) -> LockState:
        """LOCK: the first LOCK of a lock-owner on a file names the open (``open_sid`` and
        ``lock_owner``, open_to_lock_owner4), later ones the lock stateid (``lock_sid``).
        Raises :class:`~securenfs.locking.locks.LockDenied` (NFS4ERR_DENIED with the
        conflicting lock); a denied first LOCK leaves no lock stateid behind.  Blocking
        types are answered like the plain ones.

        With kernel locks on, the lock is taken in the kernel before anything is recorded:
        :class:`NeedLockFd` when this owner has no suitable descriptor of the file (pass the
        one opened as ``kfd``: this call then owns it), NFS4ERR_DELAY at ``max_lock_files``,
        LockDenied naming :data:`HOST_OWNER` when a lock outside NFS holds the range."""
        try:
            return self._lock(clientid, fh, locktype, offset, length, open_sid, lock_owner, lock_sid, kfd)
        finally:
            if kfd is not None and not self._adopted(kfd):
                os.close(kfd)

    def _adopted(self, kfd: int) -> bool:
        return kfd in self._kfds

    def _lock(self, clientid: int, fh: bytes | None, locktype: int, offset: int, length: int,
              open_sid: StateidLike | None, lock_owner: bytes | None, lock_sid: StateidLike | None,
              kfd: int | None) -> LockState:
        lt = lock_type(locktype).base
        start, end = lock_range(offset, length)
        cs = self.client(clientid)
        ls: LockState | None
        if lock_sid is None:
            if open_sid is None or lock_owner is None:
                raise Nfs4Error(Stat.INVAL, "LOCK needs an open stateid and a lock-owner, or a lock stateid")
            op: OpenState = self.lookup(clientid, open_sid, OPEN_KINDS, fh)
            name = _owner_bytes(lock_owner)
            lo = cs.lock_owners.get(name)
            # A lock stateid for this owner and file may exist (two first LOCKs in parallel):
            # it is reused rather than refused.
            ls = cs.locks.get((id(lo), op.file.fh)) if lo is not None else None
            key: OwnerKey = (clientid, name)
        else:
            ls = self.lookup(clientid, lock_sid, LOCK_KINDS, fh)
            assert ls is not None
            op, lo, key = ls.open, ls.owner, ls.owner.key
        need = 2 if lt == 2 else 1
        if not op.access & need:
            raise Nfs4Error(Stat.OPENMODE, f"a {'write' if need == 2 else 'read'} lock needs an open for "
                                           f"{'writing' if need == 2 else 'reading'}")
        f = op.file
        conflicts = list(f.locks.conflicts(key, start, end, lt))
        if conflicts:
            # A live holder is the one to report; only expired holders are revoked.
            live = [c for c in conflicts if c.clientid == clientid or not self.lease_expired(c.clientid)]
            if live or not self.courteous_break(conflicts, clientid):
                raise LockDenied((live or conflicts)[0])
        held = len(f.locks.owners.get(key, ()))
        if cs.nranges + _LOCK_GROWTH > self.max_lock_ranges:
            # Not NFS4ERR_DELAY: only this client can make room, by unlocking.  NFS4ERR_DENIED
            # ("this may be a temporary condition", RFC 8881 §15.1.8.3; §15.2 has no
            # NFS4ERR_RESOURCE for LOCK) names the range asked for and LIMIT_OWNER.
            raise LockDenied(LockConflict(offset, length, lt, 0, LIMIT_OWNER))
        fd, fd_write = -1, False
        if self.kernel_locks:
            fd, fd_write = self._kernel_lock(ls, key, f, op, lt, start, end, kfd)
        if ls is None:
            if lo is None:
                lo = cs.lock_owners[key[1]] = LockOwner(clientid, key[1])
            ls = LockState(self.table.new_other(), clientid, lo, f, op, seqid=0)
            self.table.add(ls.other, ls)
            cs.locks[(id(lo), f.fh)] = ls
            lo.nstates += 1
            op.locks.append(ls)
            f.users += 1
        if fd >= 0 and ls.kfd != fd:
            self._attach_kfd(ls, fd, fd_write)
        f.locks.lock(key, start, end, lt)
        cs.nranges += len(f.locks.owners.get(key, ())) - held
        ls.seqid = next_seqid(ls.seqid)
        return ls

    # -- the kernel's locks (securenfs.locking.ofd) ---------------------------------------------
    def _kernel_lock(self, ls: LockState | None, key: OwnerKey, f: FileState, op: OpenState, lt: LockType,
                     start: int, end: int, kfd: int | None) -> tuple[int, bool]:
        """Take [start, end) in the kernel on the owner's descriptor (the one it has, or
        ``kfd``): (descriptor, whether writable).  Nothing is recorded when this raises,
        except a migration to a writable descriptor, which is complete when it happens."""
        have = ls.kfd if ls is not None else -1
        write = lt is LockType.WRITE_LT
        if have >= 0 and (ls is not None and ls.kwrite or not write):
            fd, fd_write = have, ls is not None and ls.kwrite
        elif kfd is None:
            if have < 0 and self.lock_fds >= self.max_lock_files:
                # RFC 8881 §15.2 lists NFS4ERR_DELAY among LOCK's errors and not
                # NFS4ERR_RESOURCE; descriptors come back as owners unlock and close.
                raise Nfs4Error(Stat.DELAY, f"{self.lock_fds} lock descriptors in use (server.max_lock_files)")
            # Opened for writing whenever the open allows it, so that a later write lock by
            # this owner does not need a second descriptor.
            raise NeedLockFd(bool(op.access & 2))
        else:
            fd, fd_write = kfd, fcntl.fcntl(kfd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
            if write and not fd_write:
                raise Nfs4Error(Stat.OPENMODE, "a write lock needs an open for writing")
            if have >= 0 and ls is not None:
                # This owner's read locks move to a writable descriptor: they are taken on the
                # new one (read locks never conflict with the old one's) before the old one
                # closes, so the kernel never sees the ranges unlocked.
                try:
                    for a, b, t in f.locks.ranges(key):
                        if not ofd.set_lock(fd, t, a, b):
                            raise Nfs4Error(Stat.DELAY, "a lock outside NFS appeared on a range this owner holds")
                except ofd.KernelLockError as exc:
                    raise Nfs4Error(Stat.DELAY, f"the kernel refused a lock: {exc.strerror}") from None
                self._attach_kfd(ls, fd, fd_write)
        try:
            granted = ofd.set_lock(fd, lt, start, end)
        except ofd.KernelLockError as exc:
            # ENOLCK: the kernel's lock table is full; it may have room again later.
            raise Nfs4Error(Stat.DELAY, f"the kernel refused the lock: {exc.strerror}") from None
        if not granted:
            kc = ofd.test_lock(fd, lt, start, end)
            if kc is None:  # released in between: report the range asked for
                kc = ofd.KernelConflict(start, min(end, ofd.KERNEL_END), lt, -1)
            raise LockDenied(host_conflict(kc))
        return fd, fd_write

    def _attach_kfd(self, ls: LockState, fd: int, writable: bool) -> None:
        if ls.kfd >= 0:
            self._close_kfd(ls)
        ls.kfd, ls.kwrite = fd, writable
        self._kfds.add(fd)
        self.lock_fds += 1
        self.fds.hold(1)

    def _close_kfd(self, ls: LockState) -> None:
        """Close the owner's lock descriptor: the kernel drops every lock held on it."""
        if ls.kfd < 0:
            return
        fd, ls.kfd = ls.kfd, -1
        self._kfds.discard(fd)
        self.lock_fds -= 1
        self.fds.hold(-1)
        try:
            os.close(fd)
        except OSError:
            pass

    def _lock_state(self, key: OwnerKey, fh: bytes) -> LockState | None:
        cs = self.clients.get(key[0])
        lo = cs.lock_owners.get(key[1]) if cs is not None else None
        return cs.locks.get((id(lo), fh)) if cs is not None and lo is not None else None

    def lockt(self, clientid: int, fh: bytes, locktype: int, offset: int, length: int, owner: bytes,
              kfd: int | None = None) -> None:
        """LOCKT: raise LockDenied if the lock would be refused; changes nothing.  Locks of
        expired (courtesy) clients do not count, since a LOCK would revoke them."""
        lt = lock_type(locktype).base
        start, end = lock_range(offset, length)
        key: OwnerKey = (clientid, bytes(owner))
        f = self.files.get(fh)
        courtesy: list[LockConflict] = []
        if f is not None:
            for c in f.locks.conflicts(key, start, end, lt):
                if c.clientid == clientid or not self.lease_expired(c.clientid):
                    raise LockDenied(c)
                courtesy.append(c)
        if not self.kernel_locks:
            return
        # The kernel answers for locks outside NFS.  Any NFS lock descriptor of the file will
        # do: its own locks are hidden from the test, but every live NFS conflict was
        # reported above, and the tester's own locks must not count.
        fd = kfd if kfd is not None else -1
        mine = self._lock_state(key, fh)
        if mine is not None and mine.kfd >= 0:
            fd = mine.kfd
        elif f is not None:
            for other in f.locks.owners:
                ls = self._lock_state(other, fh)
                if ls is not None and ls.kfd >= 0:
                    fd = ls.kfd
                    break
        if fd < 0:
            raise NeedLockFd(False)
        try:
            kc = ofd.test_lock(fd, lt, start, end)
        except ofd.KernelLockError as exc:
            raise Nfs4Error(Stat.DELAY, f"the kernel could not test the lock: {exc.strerror}") from None
        # A courtesy client's lock is in the kernel too; LOCKT ignores it (a LOCK would revoke it).
        if kc is not None and not any(c.offset < kc.end and c.offset + c.length > kc.start for c in courtesy):
            raise LockDenied(host_conflict(kc))

    def locku(self, clientid: int, sid: StateidLike, fh: bytes | None, locktype: int, offset: int,
              length: int) -> LockState:
        """LOCKU: unlock the range (splitting locks that cover more); the lock stateid stays
        until FREE_STATEID or CLOSE."""
        lock_type(locktype)
        start, end = lock_range(offset, length)
        ls: LockState = self.lookup(clientid, sid, LOCK_KINDS, fh)
        cs = self.client(clientid)
        mine = ls.file.locks.owners.get(ls.owner.key, [])
        if cs.nranges + 1 > self.max_lock_ranges and any(a < start and b > end for a, b, _t in mine):
            # Unlocking the middle of a range would add one: at the bound the server does
            # not split (RFC 8881 §15.1.8.7, NFS4ERR_LOCK_RANGE); unlocking whole ranges or
            # their ends always works.
            raise Nfs4Error(Stat.LOCK_RANGE, f"the client holds {cs.nranges} byte ranges (server.max_lock_ranges); "
                                             "unlock whole ranges first")
        held = len(mine)
        if ls.kfd >= 0:
            try:
                ofd.unlock(ls.kfd, start, end)
            except ofd.KernelLockError as exc:
                # ENOLCK when a split needs a lock record the kernel cannot allocate: nothing
                # changed, the client retries.
                raise Nfs4Error(Stat.DELAY, f"the kernel could not unlock: {exc.strerror}") from None
        ls.file.locks.unlock(ls.owner.key, start, end)
        cs.nranges += len(ls.file.locks.owners.get(ls.owner.key, ())) - held
        ls.seqid = next_seqid(ls.seqid)
        return ls

    def _forget_lock(self, ls: LockState) -> None:
        cs = self.client(ls.clientid)
        cs.locks.pop((id(ls.owner), ls.file.fh), None)
        if ls in ls.open.locks:
            ls.open.locks.remove(ls)
        cs.nranges -= len(ls.file.locks.owners.get(ls.owner.key, ()))
        ls.file.locks.drop_owner(ls.owner.key)
        self._close_kfd(ls)
        ls.owner.nstates -= 1
        if ls.owner.nstates <= 0 and cs.lock_owners.get(ls.owner.owner) is ls.owner:
            del cs.lock_owners[ls.owner.owner]
        self.table.remove(ls.other)
        self._release_file(ls.file)

    def locks_of(self, fh: bytes, clientid: int, owner: bytes) -> list[tuple[int, int, Any]]:
        """(start, end, type) of one lock-owner's locks on a file (admin views and tests)."""
        f = self.files.get(fh)
        return f.locks.ranges((clientid, bytes(owner))) if f is not None else []

    # -- TEST_STATEID, FREE_STATEID, I/O (RFC 8881 §18.48, §18.38, §8.2.3) ----------------------
    def test_stateids(self, clientid: int, sids: Iterable[StateidLike]) -> list[int]:
        """One status per stateid; nothing changes.  Special stateids are NFS4ERR_BAD_STATEID."""
        out: list[int] = []
        for raw in sids:
            try:
                s = Stateid.coerce(raw)
            except Nfs4Error as exc:
                out.append(exc.status)
                continue
            out.append(Stat.BAD_STATEID if special_kind(s) is not None else int(self.table.status(clientid, s)[0]))
        return out

    def free_stateid(self, clientid: int, sid: StateidLike) -> None:
        """Forget a revoked stateid, or a lock stateid whose owner holds no lock on the file;
        NFS4ERR_LOCKS_HELD for an open stateid or a lock stateid with locks."""
        s = Stateid.coerce(sid)
        if special_kind(s) is not None:
            raise Nfs4Error(Stat.BAD_STATEID, "special stateid")
        st = self.table.get(s.other)
        if st is None or st.clientid != clientid:
            status, _ = self.table.status(clientid, s)
            raise Nfs4Error(status or Stat.BAD_STATEID, f"stateid {s}")
        if st.revoked:
            self.free_revoked(clientid, s.other)
            return
        status, _ = self.table.status(clientid, s)
        if status:
            raise Nfs4Error(status, f"stateid {s}")
        if isinstance(st, LockState) and not st.file.locks.has_locks(st.owner.key):
            self._forget_lock(st)
            return
        raise Nfs4Error(Stat.LOCKS_HELD, "the stateid still holds an open or locks")

    def check_io(self, clientid: int, sid: Stateid, fh: bytes, write: bool) -> OpenState | None:
        """The stateid of a READ, WRITE or SETATTR(size): the open it works through, or None
        for the anonymous and read-bypass stateids (I/O outside any open, which share
        reservations still govern: NFS4ERR_LOCKED).  WRITE through an open without write
        access is NFS4ERR_OPENMODE.  Byte-range locks are advisory (as on Linux)."""
        kind = special_kind(sid)
        if kind is not None:
            if kind is Special.CURRENT:
                raise Nfs4Error(Stat.BAD_STATEID, "no current stateid")
            f = self.files.get(fh)
            if f is not None:
                deny = f.shares.deny
                if write and deny & 2:
                    raise Nfs4Error(Stat.LOCKED, "another client's open denies writing (DENY_WRITE)")
                if not write and kind is Special.ANONYMOUS and deny & 1:
                    raise Nfs4Error(Stat.LOCKED, "another client's open denies reading (DENY_READ)")
            return None
        st = self.lookup(clientid, sid, IO_KINDS, fh)
        op: OpenState = st.open if isinstance(st, LockState) else st
        if write and not op.access & 2:
            raise Nfs4Error(Stat.OPENMODE, "WRITE with a stateid of an open for reading only")
        return op

    # -- revocation and the courteous server ---------------------------------------------------
    def revoke_client(self, clientid: int, why: Revoked = Revoked.EXPIRED, *,
                      because: str = "another client's request conflicted with the state of this expired "
                      "client") -> int:
        """Revoke every open and lock of the client at once (no await inside), then tell the
        revoke listeners; returns how many stateids were revoked."""
        n = self._revoke(clientid, why, because)
        for listener in self.revoke_listeners:
            listener(clientid)
        return n

    def _revoke(self, clientid: int, why: Revoked, because: str) -> int:
        cs = self.clients.get(clientid)
        if cs is None:
            return 0
        n = 0
        for ls in list(cs.locks.values()):
            ls.file.locks.drop_owner(ls.owner.key)
            self._close_kfd(ls)
            ls.revoked = why
            cs.revoked[ls.other] = ls
            self._release_file(ls.file)
            n += 1
        cs.locks.clear()
        cs.lock_owners.clear()
        cs.nranges = 0
        for st in list(cs.opens.values()):
            st.file.shares.remove(st)
            st.revoked = why
            st.locks.clear()
            cs.revoked[st.other] = st
            self._release_file(st.file)
            n += 1
        cs.opens.clear()
        cs.open_owners.clear()
        self.revocations += 1
        log.warning("client %#018x: %d stateid(s) revoked (%s) because %s", clientid, n, why.name, because)
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

    def revoked_flags(self, clientid: int) -> int:
        """sr_status_flags for the client's revoked stateids not yet freed (RFC 8881
        §18.46.3): EXPIRED_ALL_STATE_REVOKED for state revoked after its lease expired,
        ADMIN_STATE_REVOKED for state the admin revoked while the lease was valid."""
        cs = self.clients.get(clientid)
        if cs is None or not cs.revoked:
            return 0
        flags = 0
        for st in cs.revoked.values():
            flags |= _REVOKED_FLAG.get(st.revoked, 0)
        return flags

    def courteous_break(self, holders: Iterable[object], clientid: int | None = None) -> bool:
        """When every conflicting holder belongs to a client (other than ``clientid``) whose
        lease has expired, revoke those clients' state and return True (the caller checks
        again); False otherwise."""
        cids = {getattr(h, "clientid", None) for h in holders}
        cids.discard(None)
        if not cids or clientid in cids or not all(self.lease_expired(c) for c in cids if c is not None):
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
            self._close_kfd(ls)
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
        """Server stop: every descriptor closes, and with the lock descriptors the kernel
        drops the locks (after kill -9 the kernel closes them all the same)."""
        for cs in self.clients.values():
            for ls in cs.locks.values():
                self._close_kfd(ls)
        self.fds.close()
