"""NFSv4.1 open and lock state as a library: no XDR, no network (RFC 8881 §8, §9).

The OPEN, OPEN_DOWNGRADE, CLOSE, LOCK, LOCKT, LOCKU, TEST_STATEID, FREE_STATEID, READ and
WRITE handlers call one :class:`LockingState` owned by the server (one per boot epoch).  Every
call takes the calling client's 64-bit ``clientid`` (``ctx.client.clientid``): a stateid of
another client is answered exactly like an unknown one, NFS4ERR_BAD_STATEID.  Files are named
by their file-handle bytes.  Errors are raised as :class:`securenfs.nfs4.errors.Nfs4Error`
(status in ``.status``); a refused lock raises :class:`LockDenied`, whose ``.conflict`` is the
LOCK4denied (offset, length, type, clientid, owner).  Stateids come back as :class:`Stateid`
(``.pack()`` gives the 16 wire bytes); stateids given may be bytes or :class:`Stateid`.

Wiring (who calls what)::

    locking = LockingState(identity.boot_epoch, config.server.lease_time)
    SEQUENCE          locking.renew(clientid); sr_status_flags |= locking.status_flags(clientid)
    OPEN              async with locking.serialized(fh):          # only when the op awaits
                          locking.check_open(cid, owner, fh, access, deny)   # before a truncate
                          ... create / truncate in the file system (await) ...
                          res = locking.open(cid, owner, fh, access, deny)   # res.stateid
                      (CLAIM_NULL resolves the name first; CLAIM_FH uses the current fh;
                      create modes: securenfs.locking.create.decide_create)
    OPEN_DOWNGRADE    locking.open_downgrade(cid, stateid, cfh, access, deny)
    CLOSE             locking.close(cid, stateid, cfh)   -> the special invalid stateid
    LOCK              locking.lock(cid, cfh, locktype, offset, length,
                                   OpenToLockOwner(open_stateid, owner) | ExistLockOwner(lock_stateid))
    LOCKT             locking.lockt(cid, cfh, locktype, offset, length, owner)
    LOCKU             locking.locku(cid, stateid, cfh, locktype, offset, length)
    RELEASE_LOCKOWNER locking.release_lockowner(cid, owner)   -> NFS4ERR_NOTSUPP in 4.1
    TEST_STATEID      locking.test_stateids(cid, stateids)     -> [status, ...]
    FREE_STATEID      locking.free_stateid(cid, stateid)
    READ / WRITE      locking.check_io(cid, stateid, cfh, write, current=ctx.stateid)
                      then  with filecache.use(fh, os.O_RDONLY | os.O_RDWR, opener) as fd: ...
    laundromat        for cid in locking.reap(): drop the client record
    client dropped    locking.purge_client(cid)   (DESTROY_CLIENTID, restart, expiry)
    client has state  locking.client_has_state(cid)  (keeps a courtesy client's record)

The current-stateid marker (seqid 1, other zero) is replaced by the COMPOUND's current
stateid with :func:`resolve_current` before these calls (``check_io`` takes ``current=``).
The owner seqids of OPEN/CLOSE/LOCK/LOCKU are ignored in 4.1 (sessions give exactly-once
semantics); the stateid seqids are checked: zero means "the current one", a lower one is
NFS4ERR_OLD_STATEID, a higher one NFS4ERR_BAD_STATEID, a stateid of an earlier boot
NFS4ERR_STALE_STATEID, a revoked one NFS4ERR_EXPIRED / NFS4ERR_ADMIN_REVOKED.

Concurrency: all of this runs on the event-loop thread and no method awaits, so each call is
atomic.  An op that checks, awaits file-system work, then records (OPEN with create or
truncate) holds ``locking.serialized(fh)`` across the await.  :class:`OpenFileCache` is the
one part used from pool threads; it has its own lock.

See docs/locking.md for the state model.
"""

from securenfs.locking.create import CreateAction, CreateMode, decide_create
from securenfs.locking.filecache import CachedFd, OpenFileCache
from securenfs.locking.leases import LeaseTable
from securenfs.locking.locks import (
                                     NFS4_UINT64_MAX,
                                     FileLocks,
                                     LockConflict,
                                     LockDenied,
                                     LockType,
                                     lock_range,
                                     wire_length,
)
from securenfs.locking.owners import (
                                     ExistLockOwner,
                                     LockOwner,
                                     LockState,
                                     OpenOwner,
                                     OpenState,
                                     OpenToLockOwner,
)
from securenfs.locking.shares import ShareAccess, ShareDeny, validate_share
from securenfs.locking.state import FileState, LockingState, OpenResult
from securenfs.locking.stateids import (
                                     ANONYMOUS,
                                     CURRENT,
                                     INVALID,
                                     READ_BYPASS,
                                     Revoked,
                                     Special,
                                     Stateid,
                                     StateKind,
                                     next_seqid,
                                     resolve_current,
                                     special_kind,
)

__all__ = [
    "ANONYMOUS", "CURRENT", "INVALID", "NFS4_UINT64_MAX", "READ_BYPASS",
    "CachedFd", "CreateAction", "CreateMode", "ExistLockOwner", "FileLocks", "FileState", "LeaseTable",
    "LockConflict", "LockDenied", "LockOwner", "LockState", "LockType", "LockingState", "OpenFileCache",
    "OpenOwner", "OpenResult", "OpenState", "OpenToLockOwner", "Revoked", "ShareAccess", "ShareDeny",
    "Special", "StateKind", "Stateid", "decide_create", "lock_range", "next_seqid", "resolve_current",
    "special_kind", "validate_share", "wire_length",
]
