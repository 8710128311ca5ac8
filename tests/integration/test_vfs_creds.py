"""Per-thread caller identity on the real kernel (the tests run as root)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from securenfs.vfs import kernel
from securenfs.vfs.creds import ANONYMOUS, FsCreds, as_caller, current, worker_initializer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching identities needs root")

ALICE = FsCreds(40001, 40001, (40100, 40101))
BOB = FsCreds(40002, 40002, ())


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can search (pytest's tmp_path sits below a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="snfs-creds-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def test_switch_is_visible_to_the_kernel_and_undone() -> None:
    before = kernel.thread_ids()
    with as_caller(ALICE):
        ids = kernel.thread_ids()
        assert ids.fsuid == 40001 and ids.fsgid == 40001 and ids.groups == (40100, 40101)
        assert ids.uid[:3] == before.uid[:3]  # real/effective/saved untouched
    assert kernel.thread_ids() == before


def test_identity_is_restored_after_an_error_and_nesting() -> None:
    before = kernel.thread_ids()
    with pytest.raises(RuntimeError), as_caller(ALICE):
        with as_caller(BOB):
            assert kernel.thread_ids().fsuid == 40002
        assert kernel.thread_ids().fsuid == 40001
        raise RuntimeError("boom")
    assert kernel.thread_ids() == before


def test_threads_do_not_see_each_others_identity(open_dir: Path) -> None:
    secret = open_dir / "alice-only"
    secret.write_text("alice's")
    os.chown(secret, 40001, 40001)
    os.chmod(secret, 0o600)
    inside = threading.Barrier(3)
    done = threading.Barrier(3)
    seen: dict[str, object] = {}

    def run(name: str, creds: FsCreds) -> None:
        with as_caller(creds):
            inside.wait(timeout=10)  # all three threads hold their identities at once
            seen[name] = kernel.thread_ids().fsuid
            try:
                seen[name + "-read"] = secret.read_text()
            except PermissionError:
                seen[name + "-read"] = "EACCES"
            done.wait(timeout=10)

    ta = threading.Thread(target=run, args=("alice", ALICE))
    tb = threading.Thread(target=run, args=("bob", BOB))
    ta.start()
    tb.start()
    inside.wait(timeout=10)
    main_ids = kernel.thread_ids()
    main_read = secret.read_text()  # root in the main thread, unaffected
    done.wait(timeout=10)
    ta.join()
    tb.join()
    assert main_ids.fsuid == 0 and main_read == "alice's"
    assert seen == {"alice": 40001, "alice-read": "alice's", "bob": 40002, "bob-read": "EACCES"}


def test_supplementary_groups_grant_group_access(open_dir: Path) -> None:
    f = open_dir / "team"
    f.write_text("team")
    os.chown(f, 0, 40101)
    os.chmod(f, 0o640)
    with as_caller(ALICE):
        assert f.read_text() == "team"
    with as_caller(BOB), pytest.raises(PermissionError):
        f.read_text()


def test_non_root_caller_loses_root_powers(tmp_path: Path) -> None:
    f = tmp_path / "root-only"
    f.write_text("x")
    os.chmod(f, 0o600)
    with as_caller(ALICE):
        with pytest.raises(PermissionError):
            f.read_text()  # CAP_DAC_OVERRIDE is gone
        with pytest.raises(PermissionError):
            os.chmod(f, 0o644)  # CAP_FOWNER is gone
    assert f.read_text() == "x"


def test_pool_workers_start_anonymous() -> None:
    with ThreadPoolExecutor(2, initializer=worker_initializer()) as pool:
        ids = list(pool.map(lambda _: kernel.thread_ids(), range(4)))
        assert all(i.fsuid == ANONYMOUS.uid and i.fsgid == ANONYMOUS.gid and i.groups == () for i in ids)
        assert pool.submit(current).result() == ANONYMOUS
    assert kernel.thread_ids().fsuid == 0  # the main thread was not touched
