"""The default recovery store: SQLite in the state directory.

Durability: WAL journal with ``synchronous=FULL``, so a commit has reached the disk (the WAL
is fsync'd) when it returns; each ``record_client`` is one committed transaction.  All
database work runs on one dedicated thread that owns the only connection, so the event loop
never blocks and writes are naturally serialized.

At open: the directory and file must be usable and ``PRAGMA quick_check`` must pass.  An
exclusive lock file keeps a second server off the same state directory (on shared storage
in a cluster, two nodes mounting it at once would be split brain).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from securenfs.recovery.errors import RecoveryError, RecoveryUnavailable
from securenfs.recovery.records import ClientRecord, owner_label

log = logging.getLogger("securenfs.recovery")

DB_NAME = "recovery.db"
LOCK_NAME = "recovery.lock"
SCHEMA_VERSION = 1
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    owner BLOB PRIMARY KEY,
    principal TEXT,
    epoch INTEGER NOT NULL,
    recorded REAL NOT NULL
);
"""


class SqliteRecoveryStore:
    """``RecoveryStore`` over ``<state_dir>/recovery.db``."""

    def __init__(self, state_dir: Path | str, *, db_name: str = DB_NAME) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / db_name
        self._lock_path = self.state_dir / LOCK_NAME
        self._epoch = 0
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._old: dict[bytes, ClientRecord] = {}

    # -- plumbing ------------------------------------------------------------------------------
    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RecoveryError(f"recovery store {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RecoveryError(f"recovery store {self.path} is not open")
        return self._conn

    # -- open ----------------------------------------------------------------------------------
    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="securenfs-recovery")
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            self._release_lock()
            raise

    def _fix_perms(self, what: Path, exc: OSError | sqlite3.Error) -> RecoveryError:
        return RecoveryError(
            f"recovery store {what}: cannot be written ({exc}); the server keeps its client "
            f"records there and will not start without them. Make {self.state_dir} and the files "
            f"in it writable by the server's user (chown/chmod), or set server.state_dir to a "
            f"writable directory on persistent storage")

    def _corrupt(self, detail: str) -> RecoveryError:
        return RecoveryError(
            f"recovery store {self.path} is corrupt ({detail}). Restore it from a backup; or, "
            f"accepting that clients cannot reclaim their locks after this restart, move "
            f"{self.path.name} and its -wal/-shm files out of {self.state_dir} and start again "
            f"(a new, empty store is created)")

    def _open_sync(self) -> None:
        d = self.state_dir
        if not d.is_dir():
            raise RecoveryError(f"recovery store: state directory {d} does not exist or is not a directory; "
                                "create it (mode 0700, owned by the server's user) or set server.state_dir")
        try:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._fix_perms(self._lock_path, exc) from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._release_lock()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RecoveryError(
                    f"recovery store {self.path} is in use by another securenfs server (lock "
                    f"{self._lock_path} is held); stop that server first; in a cluster, the "
                    "state directory must be mounted on one node at a time") from None
            raise self._fix_perms(self._lock_path, exc) from None
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise self._fix_perms(self.path, PermissionError(errno.EACCES, "permission denied"))
        try:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._fix_perms(self.path, exc) from None
        try:
            self._init_db(conn)
        except RecoveryError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and any(
                    k in text for k in ("readonly", "unable to open", "disk I/O", "locked")):
                raise self._fix_perms(self.path, exc) from None
            raise self._corrupt(text) from None
        self._conn = conn

    def _init_db(self, conn: sqlite3.Connection) -> None:
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise self._corrupt("; ".join(str(r[0]) for r in check[:3]))
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RecoveryError(
                f"recovery store {self.path}: the file system of {self.state_dir} does not support "
                f"SQLite's WAL journal (got {mode!r}); put the state directory on a local file "
                "system (ext4, xfs, or a DRBD device), not on NFS")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            conn.execute("ROLLBACK")
            raise RecoveryError(f"recovery store {self.path} has schema {row[0]}, this server knows "
                                f"{SCHEMA_VERSION}; use the matching securenfs version")
        conn.execute("COMMIT")

    # -- records -------------------------------------------------------------------------------
    async def record_client(self, owner_id: bytes, principal: str | None) -> ClientRecord:
        rec = ClientRecord(bytes(owner_id), principal, time.time(), self._epoch)

        def write() -> None:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO clients (owner, principal, epoch, recorded) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT(owner) DO UPDATE SET principal=excluded.principal, "
                           "epoch=excluded.epoch, recorded=excluded.recorded",
                           (rec.owner_id, rec.principal, rec.epoch, rec.recorded_at))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise RecoveryUnavailable(f"recovery store {self.path}: cannot record client "
                                          f"{owner_label(rec.owner_id)}: {exc}") from None

        await self._run(write)
        return rec

    async def remove_client(self, owner_id: bytes) -> None:
        def delete() -> None:
            db = self._db()
            try:
                db.execute("DELETE FROM clients WHERE owner=?", (bytes(owner_id),))
            except sqlite3.Error as exc:
                raise RecoveryUnavailable(f"recovery store {self.path}: cannot remove client "
                                          f"{owner_label(owner_id)}: {exc}") from None

        await self._run(delete)

    def reclaimable(self) -> frozenset[bytes]:
        return frozenset(self._old)

    def reclaimable_records(self) -> Mapping[bytes, ClientRecord]:
        return dict(self._old)

    async def records(self) -> list[ClientRecord]:
        """Every record, for the admin view and tests."""
        def read() -> list[ClientRecord]:
            rows = self._db().execute("SELECT owner, principal, recorded, epoch FROM clients ORDER BY owner")
            return [ClientRecord(bytes(o), p, r, e) for o, p, r, e in rows]

        return await self._run(read)

    async def start_grace(self, new_epoch: int) -> None:
        self._epoch = new_epoch

        def snapshot() -> dict[bytes, ClientRecord]:
            # "!=" rather than "<": an epoch file restored from an old backup must not make
            # records look newer than this start.
            rows = self._db().execute("SELECT owner, principal, recorded, epoch FROM clients WHERE epoch != ?",
                                      (new_epoch,))
            return {bytes(o): ClientRecord(bytes(o), p, r, e) for o, p, r, e in rows}

        self._old = await self._run(snapshot)

    async def end_grace(self) -> int:
        epoch = self._epoch

        def drop() -> int:
            db = self._db()
            try:
                cur = db.execute("DELETE FROM clients WHERE epoch != ?", (epoch,))
                return cur.rowcount
            except sqlite3.Error as exc:
                raise RecoveryUnavailable(f"recovery store {self.path}: cannot end grace: {exc}") from None

        n = await self._run(drop)
        self._old = {}
        return n

    async def close(self) -> None:
        if self._executor is None:
            return

        def shut() -> None:
            if self._conn is not None:
                # Fold the WAL back into the database so the file is self-contained.
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("recovery store %s: checkpoint at close failed: %s", self.path, exc)
                self._conn.close()
                self._conn = None

        await self._run(shut)
        self._executor.shutdown(wait=True)
        self._executor = None
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
