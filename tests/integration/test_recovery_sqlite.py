"""The SQLite recovery store on a real file system: durability across kill -9, clear errors
for corrupt or unwritable stores, the old/new epoch swap, and a full restart with grace."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from securenfs.recovery import Decision, GraceManager, Recovery, RecoveryError
from securenfs.recovery.sqlite import SqliteRecoveryStore

ROOT = Path(__file__).resolve().parents[2]

WRITER = r"""
import asyncio, sys
from securenfs.recovery.sqlite import SqliteRecoveryStore

async def main():
    store = SqliteRecoveryStore(sys.argv[1])
    await store.open()
    await store.start_grace(7)
    i = 0
    while True:  # until killed; the parent bounds the count
        owner = b"client-%06d" % i
        await store.record_client(owner, "krb5:host/c%d@EXAMPLE.COM" % i)
        sys.stdout.write("durable %s\n" % owner.decode())
        sys.stdout.flush()
        i += 1

asyncio.run(main())
"""


def run(coro):
    return asyncio.run(coro)


async def _open(d: Path, epoch: int) -> SqliteRecoveryStore:
    s = SqliteRecoveryStore(d)
    await s.open()
    await s.start_grace(epoch)
    return s


def test_records_reported_durable_survive_kill_9(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    durable = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            durable.append(line.split()[1].encode())
            if len(durable) >= 300:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(durable) == 300, "the writer stopped early"

    async def check():
        s = await _open(tmp_path, 8)
        try:
            return s.reclaimable(), {r.owner_id: r for r in await s.records()}
        finally:
            await s.close()

    reclaimable, recs = run(check())
    missing = [o for o in durable if o not in reclaimable]
    assert missing == []
    assert recs[b"client-000042"].principal == "krb5:host/c42@EXAMPLE.COM"


def test_epoch_swap_keeps_only_clients_that_came_back(tmp_path):
    async def scenario():
        s = await _open(tmp_path, 1)
        for o in (b"a", b"b", b"c"):
            await s.record_client(o, None)
        await s.end_grace()  # nothing from before epoch 1
        await s.close()
        # Restart: a, b, c may reclaim; a and b come back; c does not.
        s = await _open(tmp_path, 2)
        assert s.reclaimable() == {b"a", b"b", b"c"}
        await s.record_client(b"a", None)
        await s.record_client(b"b", None)
        await s.record_client(b"new", None)
        assert s.reclaimable() == {b"a", b"b", b"c"}  # the snapshot does not move
        await s.remove_client(b"b")  # DESTROY_CLIENTID
        assert await s.end_grace() == 1
        await s.close()
        s = await _open(tmp_path, 3)
        try:
            return s.reclaimable()
        finally:
            await s.close()

    assert run(scenario()) == {b"a", b"new"}


def test_crash_during_grace_keeps_every_old_client_reclaimable(tmp_path):
    async def scenario():
        s = await _open(tmp_path, 1)
        await s.record_client(b"a", None)
        await s.record_client(b"b", None)
        await s.close()
        s = await _open(tmp_path, 2)
        await s.record_client(b"a", None)
        await s.close()  # stopped before end_grace: nothing was dropped
        s = await _open(tmp_path, 3)
        try:
            return s.reclaimable()
        finally:
            await s.close()

    assert run(scenario()) == {b"a", b"b"}


def test_corrupt_database_is_refused_with_the_file_and_the_fix(tmp_path):
    (tmp_path / "recovery.db").write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(RecoveryError) as ei:
        run(_open(tmp_path, 1))
    msg = str(ei.value)
    assert str(tmp_path / "recovery.db") in msg and "corrupt" in msg
    assert "move recovery.db" in msg or "Restore it from a backup" in msg


def test_damaged_pages_are_detected_at_open(tmp_path):
    async def fill():
        s = await _open(tmp_path, 1)
        for i in range(400):
            await s.record_client(b"owner-%05d" % i + b"x" * 400, "p" * 200)
        await s.close()

    run(fill())
    db = tmp_path / "recovery.db"
    data = bytearray(db.read_bytes())
    assert len(data) > 8 * 4096
    for off in range(2 * 4096, len(data) - 4096, 4096):  # scribble over b-tree pages
        data[off:off + 64] = os.urandom(64)
    db.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match="corrupt"):
        run(_open(tmp_path, 2))


@contextlib.contextmanager
def unwritable(path: Path):
    """Make ``path`` unwritable even for root (immutable flag), or by mode otherwise."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], check=False).returncode:
            pytest.skip("cannot make a file unwritable for root here (chattr +i)")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(mode)


def test_unwritable_state_directory_is_refused(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    with unwritable(d), pytest.raises(RecoveryError) as ei:
        run(_open(d, 1))
    msg = str(ei.value)
    assert str(d) in msg and "writable" in msg


def test_read_only_database_file_is_refused(tmp_path):
    async def create():
        s = await _open(tmp_path, 1)
        await s.record_client(b"a", None)
        await s.close()

    run(create())
    db = tmp_path / "recovery.db"
    with unwritable(db), pytest.raises(RecoveryError) as ei:
        run(_open(tmp_path, 2))
    assert str(db) in str(ei.value) and "chmod" in str(ei.value)
    # Nothing was harmed: once writable again the record is still there.
    s = run(_open(tmp_path, 3))
    assert s.reclaimable() == {b"a"}
    run(s.close())


def test_missing_state_directory_is_refused(tmp_path):
    with pytest.raises(RecoveryError, match="does not exist"):
        run(_open(tmp_path / "nope", 1))


def test_second_server_on_the_same_state_directory_is_refused(tmp_path):
    async def scenario():
        s = await _open(tmp_path, 1)
        try:
            with pytest.raises(RecoveryError, match="in use by another securenfs server"):
                await _open(tmp_path, 1)
        finally:
            await s.close()
        s2 = await _open(tmp_path, 2)  # free again after a clean close
        await s2.close()

    run(scenario())


def test_restart_with_grace_end_to_end(tmp_path):
    """Two starts of the recovery service: clients recorded in the first may reclaim in the
    second, others may not; grace ends once every recorded client completed."""

    async def first():
        r = Recovery(SqliteRecoveryStore(tmp_path), GraceManager(90), tick=0.05)
        await r.start(1)
        await asyncio.sleep(0.1)
        assert r.grace.check_new_state() is Decision.OK  # nobody to wait for
        await r.client_confirmed(b"alpha", "krb5:nfs/alpha@EX")
        await r.client_confirmed(b"beta", "krb5:nfs/beta@EX")
        await r.stop()

    async def second():
        r = Recovery(SqliteRecoveryStore(tmp_path), GraceManager(90), tick=0.05)
        await r.start(2)
        st = r.status()
        assert st["state"] == "in_grace" and st["clients_expected"] == 2
        assert "alpha (krb5:nfs/alpha@EX)" in st["clients_missing"]
        assert r.grace.check_reclaim(b"alpha", False) is Decision.OK
        assert r.grace.check_reclaim(b"gamma", False) is Decision.RECLAIM_BAD
        assert r.grace.check_new_state() is Decision.GRACE
        await r.client_confirmed(b"alpha", "krb5:nfs/alpha@EX")
        r.reclaim_complete(b"alpha")
        await r.client_removed(b"beta")  # DESTROY_CLIENTID
        for _ in range(100):
            if r.grace.check_new_state() is Decision.OK:
                break
            await asyncio.sleep(0.02)
        assert r.grace.check_new_state() is Decision.OK
        assert r.grace.check_reclaim(b"alpha", False) is Decision.NO_GRACE
        await r.stop()

    async def third():
        s = await _open(tmp_path, 3)
        try:
            return s.reclaimable()
        finally:
            await s.close()

    run(first())
    run(second())
    assert run(third()) == {b"alpha"}
