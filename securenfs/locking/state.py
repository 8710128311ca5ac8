"""LockingState: opens, share reservations, byte-range locks and their stateids for one server.

Everything here runs on the event-loop thread and no method awaits, so each call is one
atomic state change.  An operation that must look at the state, then await file-system work,
then change the state (OPEN with create or truncate) holds :meth:`LockingState.serialized` for
the file across the await; see the package docstring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from securenfs.locking.leases import (
    DEFAULT_COURTESY_MAX_AGE,
    DEFAULT_LEASE_TIME,
    DEFAULT_MAX_COURTESY_CLIENTS,
    LeaseTable,
)
from securenfs.locking.locks import (
    FileLocks,
    LockConflict,
    LockDenied,
    LockType,
    OwnerKey,
    lock_range,
    lock_type,
)
from securenfs.locking.owners import (
    OWNER_LIMIT,
    ExistLockOwner,
    FileKey,
    LockOwner,
    LockState,
    OpenOwner,
    OpenState,
    OpenToLockOwner,
)
from securenfs.locking.shares import FileShares, ShareAccess, ShareDeny, achievable, validate_share
from securenfs.locking.stateids import (
    INVALID,
    Revoked,
    Special,
    Stateid,
    StateidTable,
    StateKind,
    resolve_current,
    special_kind,
)
from securenfs.nfs4.constants import SeqStatus, Stat
from securenfs.nfs4.errors import Nfs4Error

log = logging.getLogger("securenfs.locking")

AnyState: TypeAlias = OpenState | LockState
StateidLike: TypeAlias = Stateid | bytes | bytearray | memoryview

_OPEN: Final = frozenset({StateKind.OPEN})
_LOCK: Final = frozenset({StateKind.LOCK})
_IO: Final = frozenset({StateKind.OPEN, StateKind.LOCK})


@dataclass(slots=True)
class FileState:
    """Share reservations and byte-range locks on one file."""

    key: FileKey
    shares: FileShares = field(default_factory=FileShares)
    locks: FileLocks = field(default_factory=FileLocks)

    def __bool__(self) -> bool:
        return bool(self.shares) or bool(self.locks)


@dataclass(slots=True)
class ClientStates:
    """The owners one client has created (keyed by their opaque owner bytes)."""

    clientid: int
    open_owners: dict[bytes, OpenOwner] = field(default_factory=dict)
    lock_owners: dict[bytes, LockOwner] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class OpenResult:
    stateid: Stateid
    state: OpenState
    #: True for the owner's first open of the file, False for an upgrade.
    new: bool


@dataclass(slots=True)
class _Mutex:
    lock: asyncio.Lock
    users: int = 0


def _check_owner(owner: bytes) -> bytes:
    if len(owner) > OWNER_LIMIT:
        raise Nfs4Error(Stat.INVAL, f"owner of {len(owner)} bytes (limit {OWNER_LIMIT})")
    return bytes(owner)


class LockingState:
    def __init__(self, boot_epoch: int, lease_time: float = DEFAULT_LEASE_TIME, *,
                 clock: Callable[[], float] = time.monotonic,
                 max_courtesy_clients: int = DEFAULT_MAX_COURTESY_CLIENTS,
                 courtesy_max_age: float = DEFAULT_COURTESY_MAX_AGE):
        self.stateids: StateidTable[AnyState] = StateidTable(boot_epoch)
        self.leases = LeaseTable(lease_time, clock=clock, max_courtesy_clients=max_courtesy_clients,
                                 courtesy_max_age=courtesy_max_age)
        self.files: dict[FileKey, FileState] = {}
        self._clients: dict[int, ClientStates] = {}
        self._mutexes: dict[FileKey, _Mutex] = {}

    # -- helpers -------------------------------------------------------------------------------
    def _client(self, clientid: int) -> ClientStates:
        cs = self._clients.get(clientid)
        if cs is None:
            cs = self._clients[clientid] = ClientStates(clientid)
            self.leases.get(clientid)
        return cs

    def _file(self, key: FileKey) -> FileState:
        fs = self.files.get(key)
        if fs is None:
            fs = self.files[key] = FileState(key)
        return fs

    def _tidy_file(self, key: FileKey) -> None:
        fs = self.files.get(key)
        if fs is not None and not fs:
            del self.files[key]

    def _lookup(self, clientid: int, sid: StateidLike, kinds: frozenset[StateKind], file: FileKey | None) -> AnyState:
        s = Stateid.coerce(sid)
        st = self.stateids.lookup(clientid, s, kinds)
        if file is not None and st.file != file:
            raise Nfs4Error(Stat.BAD_STATEID, f"stateid {s} is for another file")
        return st

    def _courtesy(self, clientid: int, holders: Iterable[int]) -> bool:
        """Revoke every expired client among ``holders`` (never the caller's own client).
        Returns True when every holder was such a courtesy client."""
        live = False
        expired: set[int] = set()
        for cid in holders:
            if cid != clientid and self.leases.expired(cid):
                expired.add(cid)
            else:
                live = True
        if live:
            return False
        for cid in expired:
            log.info("client %#018x: lease expired and its state conflicts with client %#018x: "
                     "revoking all of its opens and locks", cid, clientid)
            self._revoke_client(cid, Revoked.EXPIRED)
        return True

    # -- leases --------------------------------------------------------------------------------
    def renew(self, clientid: int) -> None:
        """Every SEQUENCE of the client (RFC 8881 §8.3)."""
        self.leases.renew(clientid)

    def status_flags(self, clientid: int) -> int:
        """Revocation bits for sr_status_flags (RFC 8881 §18.46.3)."""
        return self.leases.status_flags(clientid)

    def client_has_state(self, clientid: int) -> bool:
        """Whether the client holds opens or locks (a courtesy client must be kept)."""
        cs = self._clients.get(clientid)
        return cs is not None and bool(cs.open_owners or cs.lock_owners)

    # -- serialization across awaits -----------------------------------------------------------
    @asynccontextmanager
    async def serialized(self, file: FileKey) -> AsyncIterator[None]:
        """Hold the file's mutex: for an OPEN that checks shares, awaits a create or truncate
        in the file system, then records the open.  Pure state calls need no mutex."""
        m = self._mutexes.get(file)
        if m is None:
            m = self._mutexes[file] = _Mutex(asyncio.Lock())
        m.users += 1
        try:
            async with m.lock:
                yield
        finally:
            m.users -= 1
            if not m.users:
                del self._mutexes[file]

    # -- OPEN, OPEN_DOWNGRADE, CLOSE -----------------------------------------------------------
    def _share_check(self, clientid: int, fs: FileState, holder: OpenState | None, access: int, deny: int) -> None:
        if not fs.shares.conflicts(holder, access, deny):
            return
        holders = [h.clientid for h in fs.shares.conflicting_holders(holder, access, deny)
                   if isinstance(h, OpenState)]
        if self._courtesy(clientid, holders) and not fs.shares.conflicts(holder, access, deny):
            return
        oa, od = fs.shares.others(holder)
        raise Nfs4Error(Stat.SHARE_DENIED, f"access {ShareAccess(access)!r}/deny {ShareDeny(deny)!r} conflicts with "
                                           f"other opens (access {oa:#x}, deny {od:#x})")

    def check_open(self, clientid: int, owner: bytes, file: FileKey, access: int, deny: int) -> None:
        """Would :meth:`open` succeed?  NFS4ERR_SHARE_DENIED / NFS4ERR_INVAL if not.  For an
        OPEN that truncates an existing file: check first, then truncate, then :meth:`open`
        (all under :meth:`serialized`).  Expired conflicting clients are revoked here."""
        a, d = validate_share(access, deny)
        fs = self.files.get(file)
        if fs is None:
            return
        oo = self._clients.get(clientid)
        holder = None
        if oo is not None:
            o = oo.open_owners.get(bytes(owner))
            holder = o.opens.get(file) if o is not None else None
        if holder is not None:
            a, d = a | holder.access, d | holder.deny
        self._share_check(clientid, fs, holder, a, d)

    def open(self, clientid: int, owner: bytes, file: FileKey, access: int, deny: int) -> OpenResult:
        """The share-reservation part of OPEN (CLAIM_NULL after the name is resolved or the
        file created, CLAIM_FH on the current file handle), RFC 8881 §18.16.

        A second OPEN by the same open-owner upgrades its open stateid to the union of the
        modes and bumps its seqid; the first returns seqid 1.
        """
        owner = _check_owner(owner)
        a, d = validate_share(access, deny)
        fs = self._file(file)
        cs = self._client(clientid)
        oo = cs.open_owners.get(owner)
        st = oo.opens.get(file) if oo is not None else None
        na, nd = (a | st.access, d | st.deny) if st is not None else (a, d)
        try:
            self._share_check(clientid, fs, st, na, nd)
        except Nfs4Error:
            self._tidy_file(file)
            raise
        # A courtesy revocation during the check may have tidied the file record away.
        fs = self._file(file)
        if oo is None:
            oo = cs.open_owners[owner] = OpenOwner(clientid, owner)
        if st is None:
            other = self.stateids.new_other()
            st = OpenState(other, clientid, oo, file, na, nd)
            self.stateids.add(other, st)
            oo.opens[file] = st
            new = True
        else:
            st.access, st.deny = na, nd
            st.bump()
            new = False
        st.used.add((a, d))
        fs.shares.set(st, na, nd)
        return OpenResult(st.stateid, st, new)

    def open_downgrade(self, clientid: int, stateid: StateidLike, file: FileKey | None, access: int,
                       deny: int) -> Stateid:
        """OPEN_DOWNGRADE (RFC 8881 §18.18): the new modes must be the union of some of the
        OPENs done by this owner on the file, else NFS4ERR_INVAL."""
        st = self._lookup(clientid, stateid, _OPEN, file)
        assert isinstance(st, OpenState)
        a, d = validate_share(access, deny)
        if not achievable((a, d), st.used):
            raise Nfs4Error(Stat.INVAL, f"access {a:#x}/deny {d:#x} is not a combination of earlier OPENs "
                                        f"{sorted(st.used)}")
        st.access, st.deny = a, d
        st.used = {(ua, ud) for ua, ud in st.used if ua & ~a == 0 and ud & ~d == 0}
        self.files[st.file].shares.set(st, a, d)
        return st.bump()

    def close(self, clientid: int, stateid: StateidLike, file: FileKey | None) -> Stateid:
        """CLOSE (RFC 8881 §18.2).  The open's lock stateids and any locks still held through
        them end with it (the server may free them, §18.2.4).  Returns the special invalid
        stateid, as §18.2.4 recommends for 4.1."""
        st = self._lookup(clientid, stateid, _OPEN, file)
        assert isinstance(st, OpenState)
        self._drop_open(st, forget=True)
        return INVALID

    def _drop_lock_state(self, ls: LockState, *, forget: bool) -> None:
        fs = self.files.get(ls.file)
        if fs is not None:
            fs.locks.drop_owner(ls.owner.key)
        ls.open.locks.pop(ls.owner.key, None)
        ls.owner.states.pop(ls.file, None)
        if not ls.owner.states:
            cs = self._clients.get(ls.clientid)
            if cs is not None and cs.lock_owners.get(ls.owner.owner) is ls.owner:
                del cs.lock_owners[ls.owner.owner]
        if forget:
            self.stateids.remove(ls.other)

    def _drop_open(self, st: OpenState, *, forget: bool) -> None:
        for ls in list(st.locks.values()):
            self._drop_lock_state(ls, forget=forget)
            if not forget:
                ls.revoked = st.revoked
        fs = self.files.get(st.file)
        if fs is not None:
            fs.shares.remove(st)
        oo = st.owner
        if oo.opens.get(st.file) is st:
            del oo.opens[st.file]
        if not oo.opens:
            cs = self._clients.get(st.clientid)
            if cs is not None and cs.open_owners.get(oo.owner) is oo:
                del cs.open_owners[oo.owner]
        if forget:
            self.stateids.remove(st.other)
        self._tidy_file(st.file)

    # -- LOCK, LOCKT, LOCKU --------------------------------------------------------------------
    def lock(self, clientid: int, file: FileKey | None, locktype: int, offset: int, length: int,
             locker: OpenToLockOwner | ExistLockOwner) -> Stateid:
        """LOCK (RFC 8881 §18.10): grant or raise LockDenied (NFS4ERR_DENIED with the
        conflicting lock).  Blocking types are answered like the plain ones."""
        lt = lock_type(locktype)
        start, end = lock_range(offset, length)
        ls: LockState | None
        if isinstance(locker, OpenToLockOwner):
            op = self._lookup(clientid, locker.open_stateid, _OPEN, file)
            assert isinstance(op, OpenState)
            lo_bytes = _check_owner(locker.lock_owner)
            cs = self._client(clientid)
            lo = cs.lock_owners.get(lo_bytes)
            # A lock stateid for this owner and file may exist already (parallel first LOCKs
            # of one owner); it is reused rather than refused.
            ls = lo.states.get(op.file) if lo is not None else None
            key: OwnerKey = (clientid, lo_bytes)
        else:
            found = self._lookup(clientid, locker.lock_stateid, _LOCK, file)
            assert isinstance(found, LockState)
            ls = found
            op = ls.open
            lo = ls.owner
            key = lo.key
        need = ShareAccess.WRITE if lt.base is LockType.WRITE_LT else ShareAccess.READ
        if not op.access & need:
            raise Nfs4Error(Stat.OPENMODE, f"{lt.name} lock needs an open for {need.name}")
        self._lock_check(clientid, self._file(op.file), key, start, end, lt, revoke=True)
        # Fetched again: a courtesy revocation during the check may have tidied the record.
        fs = self._file(op.file)
        if ls is None:
            cs = self._client(clientid)
            if lo is None:
                lo = cs.lock_owners[key[1]] = LockOwner(clientid, key[1])
            other = self.stateids.new_other()
            ls = LockState(other, clientid, lo, op.file, op)
            self.stateids.add(other, ls)
            lo.states[op.file] = ls
            op.locks[key] = ls
            fs.locks.lock(key, start, end, lt)
            return ls.stateid
        fs.locks.lock(key, start, end, lt)
        return ls.bump()

    def _lock_check(self, clientid: int, fs: FileState, key: OwnerKey | None, start: int, end: int, lt: LockType,
                    *, revoke: bool) -> None:
        conflicts = list(fs.locks.conflicts(key, start, end, lt))
        if not conflicts:
            return
        live = [c for c in conflicts if c.clientid == clientid or not self.leases.expired(c.clientid)]
        if live:
            raise LockDenied(live[0])
        if revoke:
            self._courtesy(clientid, [c.clientid for c in conflicts])

    def lockt(self, clientid: int, file: FileKey, locktype: int, offset: int, length: int, owner: bytes) -> None:
        """LOCKT (RFC 8881 §18.11): raise LockDenied if the lock would be refused.  Changes
        nothing; locks of expired (courtesy) clients do not count, since a LOCK would revoke
        them.  The lock_owner4 clientid is the session's (``clientid``)."""
        lt = lock_type(locktype)
        start, end = lock_range(offset, length)
        fs = self.files.get(file)
        if fs is None:
            return
        self._lock_check(clientid, fs, (clientid, bytes(owner)), start, end, lt, revoke=False)

    def locku(self, clientid: int, stateid: StateidLike, file: FileKey | None, locktype: int, offset: int,
              length: int) -> Stateid:
        """LOCKU (RFC 8881 §18.12): unlock the range (splitting locks that cover more); the lock
        stateid stays until FREE_STATEID or CLOSE."""
        lock_type(locktype)
        start, end = lock_range(offset, length)
        ls = self._lookup(clientid, stateid, _LOCK, file)
        assert isinstance(ls, LockState)
        fs = self.files.get(ls.file)
        if fs is not None:
            fs.locks.unlock(ls.owner.key, start, end)
        return ls.bump()

    def release_lockowner(self, clientid: int, owner: bytes, minorversion: int = 1) -> None:
        """RELEASE_LOCKOWNER is an NFSv4.0 operation that NFSv4.1 servers must not implement
        (RFC 8881 §18 operation table, §15.2: NFS4ERR_NOTSUPP); 4.1 clients free a lock-owner's
        stateids with FREE_STATEID.  For 4.0 it releases an owner without locks."""
        if minorversion >= 1:
            raise Nfs4Error(Stat.NOTSUPP, "RELEASE_LOCKOWNER is not part of NFSv4.1 (use FREE_STATEID)")
        cs = self._clients.get(clientid)
        lo = cs.lock_owners.get(bytes(owner)) if cs is not None else None
        if lo is None:
            return
        for ls in lo.states.values():
            fs = self.files.get(ls.file)
            if fs is not None and fs.locks.has_locks(lo.key):
                raise Nfs4Error(Stat.LOCKS_HELD, "the lock-owner still holds locks")
        for ls in list(lo.states.values()):
            self._drop_lock_state(ls, forget=True)

    def locks_of(self, file: FileKey, clientid: int, owner: bytes) -> list[tuple[int, int, LockType]]:
        """(start, end, type) of one lock-owner's locks on a file (for admin views and tests)."""
        fs = self.files.get(file)
        return fs.locks.ranges((clientid, bytes(owner))) if fs is not None else []

    # -- TEST_STATEID, FREE_STATEID, I/O checks ------------------------------------------------
    def test_stateids(self, clientid: int, stateids: Iterable[StateidLike]) -> list[int]:
        """TEST_STATEID (RFC 8881 §18.48): one status per stateid, nothing changed."""
        out: list[int] = []
        for sid in stateids:
            try:
                s = Stateid.coerce(sid)
            except Nfs4Error as exc:
                out.append(exc.status)
                continue
            if special_kind(s) is not None:
                out.append(Stat.BAD_STATEID)
                continue
            out.append(self.stateids.status(clientid, s)[0])
        return out

    def free_stateid(self, clientid: int, stateid: StateidLike) -> None:
        """FREE_STATEID (RFC 8881 §18.38): forget a revoked stateid, or a lock stateid whose
        owner holds no lock on the file; NFS4ERR_LOCKS_HELD for an open or a lock stateid
        with locks."""
        s = Stateid.coerce(stateid)
        if special_kind(s) is not None:
            raise Nfs4Error(Stat.BAD_STATEID, "special stateid")
        status, st = self.stateids.status(clientid, s)
        if st is None and status in (Stat.EXPIRED, Stat.ADMIN_REVOKED, Stat.DELEG_REVOKED):
            found = self.stateids.get(s.other)
            assert found is not None
            self.stateids.remove(s.other)
            self.leases.note_freed(clientid, s.other)
            return
        if st is None:
            raise Nfs4Error(status, f"stateid {s}")
        if isinstance(st, OpenState):
            raise Nfs4Error(Stat.LOCKS_HELD, "an open stateid is freed by CLOSE")
        assert isinstance(st, LockState)
        fs = self.files.get(st.file)
        if fs is not None and fs.locks.has_locks(st.owner.key):
            raise Nfs4Error(Stat.LOCKS_HELD, "the lock-owner still holds locks on the file")
        self._drop_lock_state(st, forget=True)
        self._tidy_file(st.file)

    def check_io(self, clientid: int, stateid: StateidLike, file: FileKey, write: bool,
                 current: StateidLike | None = None) -> AnyState | None:
        """The stateid of a READ, WRITE or SETATTR(size) (RFC 8881 §8.2.3, §9.7).

        Returns the open or lock state, or None for the anonymous and read-bypass stateids.
        The anonymous stateid is refused with NFS4ERR_LOCKED where a share reservation denies
        the access; read-bypass is for READ only.  WRITE through an open without write access
        is NFS4ERR_OPENMODE.  Byte-range locks are advisory (as on Linux) and not checked.
        """
        s = resolve_current(Stateid.coerce(stateid), None if current is None else Stateid.coerce(current))
        kind = special_kind(s)
        if kind is Special.ANONYMOUS:
            fs = self.files.get(file)
            if fs is not None:
                bit = ShareDeny.WRITE if write else ShareDeny.READ
                if fs.shares.deny & bit:
                    holders = [h.clientid for h, (_a, d) in fs.shares.holders.items()
                               if d & bit and isinstance(h, OpenState)]
                    if not self._courtesy(clientid, holders) or fs.shares.deny & bit:
                        raise Nfs4Error(Stat.LOCKED, f"a share reservation denies {bit.name}")
            return None
        if kind is Special.READ_BYPASS:
            if write:
                raise Nfs4Error(Stat.BAD_STATEID, "the read-bypass stateid is for READ only")
            return None
        st = self._lookup(clientid, s, _IO, file)
        op = st if isinstance(st, OpenState) else st.open
        if write and not op.access & ShareAccess.WRITE:
            raise Nfs4Error(Stat.OPENMODE, "file not open for writing")
        return st

    # -- revocation and cleanup ----------------------------------------------------------------
    def _revoke_client(self, clientid: int, why: Revoked) -> list[bytes]:
        cs = self._clients.get(clientid)
        if cs is None:
            return []
        revoked: list[bytes] = []
        for oo in list(cs.open_owners.values()):
            for st in list(oo.opens.values()):
                st.revoked = why
                revoked.append(st.other)
                revoked.extend(ls.other for ls in st.locks.values())
                self._drop_open(st, forget=False)
        cs.open_owners.clear()
        cs.lock_owners.clear()
        flag = SeqStatus.EXPIRED_ALL_STATE_REVOKED if why is Revoked.EXPIRED else SeqStatus.ADMIN_STATE_REVOKED
        self.leases.note_revoked(clientid, revoked, flag)
        return revoked

    def revoke_client(self, clientid: int, why: Revoked = Revoked.ADMIN) -> int:
        """Revoke every open and lock of a client at once (admin action or expiry); its
        stateids answer the matching error until freed.  Returns how many were revoked."""
        n = len(self._revoke_client(clientid, why))
        if n:
            log.warning("client %#018x: %d stateids revoked (%s)", clientid, n, why.name)
        return n

    def purge_client(self, clientid: int) -> None:
        """Forget everything of a client whose record goes away (DESTROY_CLIENTID, a client
        restart, or the courtesy cap)."""
        cs = self._clients.pop(clientid, None)
        if cs is not None:
            for oo in list(cs.open_owners.values()):
                for st in list(oo.opens.values()):
                    self._drop_open(st, forget=True)
        if clientid in self.leases:
            for other in list(self.leases.get(clientid).revoked):
                self.stateids.remove(other)
        self.leases.forget(clientid)

    def reap(self) -> list[int]:
        """Laundromat step: drop the state of courtesy clients beyond the age or count cap
        (oldest first) and the lease records of expired clients without state.  Returns the
        client ids whose state was dropped; the client table should drop those clients."""
        dropped: list[int] = []
        keep = 0
        for age, cid in self.leases.expired_clients():
            holds = self.client_has_state(cid) or bool(self.leases.get(cid).revoked)
            if not holds:
                self._clients.pop(cid, None)
                self.leases.forget(cid)
                continue
            if age > self.leases.courtesy_max_age:
                self.purge_client(cid)
                dropped.append(cid)
                continue
            keep += 1
        if keep > self.leases.max_courtesy_clients:
            surplus = keep - self.leases.max_courtesy_clients
            for _age, cid in self.leases.expired_clients():
                if surplus <= 0:
                    break
                self.purge_client(cid)
                dropped.append(cid)
                surplus -= 1
        for cid in dropped:
            log.info("client %#018x: courtesy state discarded (lease expired long ago or too many "
                     "expired clients)", cid)
        return dropped


__all__ = ["AnyState", "ClientStates", "FileState", "LockConflict", "LockingState", "OpenResult"]
