"""LocalFs on a real file system: handles, containment, kernel-decided permissions, READDIR.

The tests run as root and act as other (unnamed) uids, so every permission decision below
is the kernel's.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from securenfs.config import ClientRule, ExportConfig
from securenfs.exports import Access, ExportTable, apply_squash
from securenfs.proto.constants import Access4
from securenfs.vfs.creds import FsCreds, worker_initializer
from securenfs.vfs.errors import BadCookie, BadName, CookieVerifierMismatch, FsError
from securenfs.vfs.handles import BadHandle, HandleCodec, load_or_create_key
from securenfs.vfs.local import LocalFs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="open_by_handle_at and identity switches need root")

ALICE = FsCreds(40001, 40001, ())
BOB = FsCreds(40002, 40002, ())
ROOT = FsCreds(0, 0, ())


@dataclass
class Site:
    base: Path
    a: Path  # export A
    b: Path  # export B
    state: Path
    table: ExportTable
    fa: LocalFs
    fb: LocalFs

    def restart(self) -> tuple[ExportTable, LocalFs]:
        table = ExportTable.from_config(_configs(self))
        return table, LocalFs(table.exports[0], HandleCodec(load_or_create_key(self.state)))


def _configs(site: Site) -> list[ExportConfig]:
    return [ExportConfig(site.a, "/srv/a", ["sys"]), ExportConfig(site.b, "/srv/b", ["sys"])]


@pytest.fixture
def site() -> Iterator[Site]:
    base = Path(tempfile.mkdtemp(prefix="snfs-vfs-"))
    base.chmod(0o755)  # pytest's tmp_path sits below a 0700 directory
    a, b, state = base / "a", base / "b", base / "state"
    for d in (a, b):
        d.mkdir()
        d.chmod(0o755)
    s = Site(base, a, b, state, None, None, None)  # type: ignore[arg-type]
    s.table = ExportTable.from_config(_configs(s))
    codec = HandleCodec(load_or_create_key(state))
    s.fa, s.fb = (LocalFs(e, codec) for e in s.table.exports)
    yield s
    s.fa.close()
    s.fb.close()
    shutil.rmtree(base)


def _path_of(fs: LocalFs, root_fh: bytes, *names: str, creds: FsCreds = ROOT) -> bytes:
    fh = root_fh
    for n in names:
        fh, _ = fs.lookup(fh, n, creds)
    return fh


# -- handles -------------------------------------------------------------------------------


def test_handles_survive_a_restart(site: Site) -> None:
    (site.a / "dir").mkdir()
    (site.a / "dir" / "f").write_text("data")
    fh = _path_of(site.fa, site.fa.root_fh(), "dir", "f")
    root_before = site.fa.root_fh()
    site.fa.close()
    _, fs2 = site.restart()  # new table, new codec, same key file
    try:
        assert fs2.root_fh() == root_before
        assert fs2.stat(fh).st_ino == os.stat(site.a / "dir" / "f").st_ino
        assert _path_of(fs2, fs2.root_fh(), "dir", "f") == fh
        fd = fs2.open(fh, os.O_RDONLY, ROOT)
        assert os.read(fd, 10) == b"data"
        os.close(fd)
    finally:
        fs2.close()


def test_every_altered_byte_is_refused(site: Site) -> None:
    (site.a / "f").write_text("x")
    fh = _path_of(site.fa, site.fa.root_fh(), "f")
    for i in range(len(fh)):
        bad = bytearray(fh)
        bad[i] ^= 0x01
        with pytest.raises(BadHandle):
            site.fa.stat(bytes(bad))
    with pytest.raises(BadHandle):
        site.fa.stat(b"\x00" * 40)


def test_handle_of_export_a_is_not_valid_in_export_b(site: Site) -> None:
    (site.a / "f").write_text("x")
    fh = _path_of(site.fa, site.fa.root_fh(), "f")
    for call in (lambda: site.fb.stat(fh), lambda: site.fb.open(fh, os.O_RDONLY, ROOT),
                 lambda: site.fb.readdir(site.fa.root_fh(), 0, ROOT, 10)):
        with pytest.raises(BadHandle, match="another export"):
            call()
    with pytest.raises(BadHandle):
        site.fa.stat(site.fa.codec.pseudo(1))


def test_removed_files_give_stale(site: Site) -> None:
    (site.a / "f").write_text("x")
    (site.a / "d").mkdir()
    ffh = _path_of(site.fa, site.fa.root_fh(), "f")
    dfh = _path_of(site.fa, site.fa.root_fh(), "d")
    os.unlink(site.a / "f")
    os.rmdir(site.a / "d")
    for fh in (ffh, dfh):
        with pytest.raises(FsError) as ei:
            site.fa.stat(fh)
        assert ei.value.errno == errno.ESTALE
    with pytest.raises(FsError) as ei:
        site.fa.lookup(dfh, "x", ROOT)
    assert ei.value.errno == errno.ESTALE


# -- permissions are the kernel's ------------------------------------------------------------


def test_kernel_decides_access_as_the_caller(site: Site) -> None:
    f = site.a / "alice.txt"
    f.write_text("private")
    os.chown(f, 40001, 40001)
    os.chmod(f, 0o600)
    fh = _path_of(site.fa, site.fa.root_fh(), "alice.txt", creds=BOB)  # lookup needs only x on the dir
    fd = site.fa.open(fh, os.O_RDONLY, ALICE)
    assert os.read(fd, 20) == b"private"
    os.close(fd)
    with pytest.raises(FsError) as ei:
        site.fa.open(fh, os.O_RDONLY, BOB)
    assert ei.value.errno == errno.EACCES
    rw = Access4.READ | Access4.MODIFY | Access4.EXTEND | Access4.EXECUTE
    assert site.fa.access(fh, ALICE, rw) == Access4.READ | Access4.MODIFY | Access4.EXTEND
    assert site.fa.access(fh, BOB, rw) == 0
    assert site.fa.access(fh, ALICE, rw, read_only=True) == Access4.READ


def test_directory_permissions_and_rdattr_errors(site: Site) -> None:
    d = site.a / "private"
    d.mkdir()
    (d / "x").write_text("x")
    os.chmod(d, 0o700)
    dfh = _path_of(site.fa, site.fa.root_fh(), "private")
    for call in (lambda: site.fa.readdir(dfh, 0, BOB, 10), lambda: site.fa.lookup(dfh, "x", BOB)):
        with pytest.raises(FsError) as ei:
            call()
        assert ei.value.errno == errno.EACCES
    os.chmod(d, 0o744)  # readable, not searchable: names yes, attributes no
    entries, eof, _ = site.fa.readdir(dfh, 0, BOB, 10)
    assert eof and [(e.name, e.error, e.fh) for e in entries] == [("x", errno.EACCES, None)]
    assert site.fa.access(dfh, BOB, Access4.READ | Access4.LOOKUP) == Access4.READ
    entries, _, _ = site.fa.readdir(dfh, 0, ROOT, 10)
    assert entries[0].error is None and entries[0].fh is not None


def test_threads_acting_as_different_users_at_once(site: Site) -> None:
    for owner in (40001, 40002):
        f = site.a / f"f{owner}"
        f.write_text(str(owner))
        os.chown(f, owner, owner)
        os.chmod(f, 0o600)
    fhs = {u: _path_of(site.fa, site.fa.root_fh(), f"f{u}") for u in (40001, 40002)}
    who = {40001: ALICE, 40002: BOB}

    def attempt(i: int) -> tuple[int, int, bool]:
        caller, target = (40001, 40002)[i % 2], (40001, 40002)[(i // 2) % 2]
        try:
            fd = site.fa.open(fhs[target], os.O_RDONLY, who[caller])
        except FsError as exc:
            assert exc.errno == errno.EACCES
            return caller, target, False
        os.close(fd)
        return caller, target, True

    with ThreadPoolExecutor(8, initializer=worker_initializer()) as pool:
        results = list(pool.map(attempt, range(800)))
    assert all(ok == (caller == target) for caller, target, ok in results)


def test_root_squash_makes_root_anonymous(site: Site) -> None:
    f = site.a / "rootfile"
    f.write_text("root")
    os.chmod(f, 0o600)
    fh = _path_of(site.fa, site.fa.root_fh(), "rootfile")
    squashed = apply_squash(Access(False, "root", 65534, 65534), 0, 0, [0])
    assert squashed == FsCreds(65534, 65534, (65534,))
    with pytest.raises(FsError) as ei:
        site.fa.open(fh, os.O_RDONLY, squashed)
    assert ei.value.errno == errno.EACCES
    trusted = apply_squash(Access(False, "none", 65534, 65534), 0, 0, [0])
    os.close(site.fa.open(fh, os.O_RDONLY, trusted))


# -- names and containment -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/", "a\0b"])
def test_bad_names_are_refused(site: Site, name: str) -> None:
    with pytest.raises(BadName):
        site.fa.lookup(site.fa.root_fh(), name, ROOT)


def test_overlong_name(site: Site) -> None:
    with pytest.raises(FsError) as ei:
        site.fa.lookup(site.fa.root_fh(), "n" * 256, ROOT)
    assert ei.value.errno == errno.ENAMETOOLONG


def test_symlinks_are_returned_never_followed(site: Site) -> None:
    os.symlink("/etc", site.a / "escape")
    fh, st = site.fa.lookup(site.fa.root_fh(), "escape", ALICE)
    assert (st.st_mode & 0o170000) == 0o120000
    assert site.fa.readlink(fh, ALICE) == b"/etc"
    with pytest.raises(FsError) as ei:
        site.fa.lookup(fh, "passwd", ALICE)
    assert ei.value.errno == errno.ELOOP  # NFS4ERR_SYMLINK, RFC 8881 §18.15.3
    with pytest.raises(FsError) as ei:
        site.fa.open(fh, os.O_RDONLY, ROOT)
    assert ei.value.errno == errno.ELOOP
    with pytest.raises(FsError):
        site.fa.readlink(site.fa.root_fh(), ROOT)  # not a link: EINVAL
    assert site.fa.stat(fh).st_ino == os.lstat(site.a / "escape").st_ino


def test_lookupp_stops_at_the_export_root(site: Site) -> None:
    (site.a / "d" / "e").mkdir(parents=True)
    dfh = _path_of(site.fa, site.fa.root_fh(), "d")
    efh = _path_of(site.fa, dfh, "e")
    assert site.fa.lookupp(efh, ALICE) == dfh
    assert site.fa.lookupp(dfh, ALICE) == site.fa.root_fh()
    assert site.fa.lookupp(site.fa.root_fh(), ALICE) is None  # the pseudo node is above
    parent = site.table.junction(site.fa.export).parent
    assert parent is not None and parent.path == "/srv"


def test_directory_moved_out_of_the_export_cannot_climb_further(site: Site) -> None:
    (site.a / "d" / "e").mkdir(parents=True)
    efh = _path_of(site.fa, site.fa.root_fh(), "d", "e")
    os.rename(site.a / "d", site.base / "moved")
    with pytest.raises(FsError) as ei:
        site.fa.lookupp(efh, ROOT)
    assert ei.value.errno == errno.EACCES
    with pytest.raises(FsError):
        site.fa.fh_for_path(site.base / "moved")


def test_mount_points_below_the_export_are_not_crossed(site: Site) -> None:
    mnt = site.a / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "snfs-test", str(mnt)],
                       capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.decode().strip()}")
    try:
        (mnt / "inside").write_text("other fs")
        with pytest.raises(FsError) as ei:
            site.fa.lookup(site.fa.root_fh(), "mnt", ROOT)
        assert ei.value.errno == errno.EACCES
        entries, _, _ = site.fa.readdir(site.fa.root_fh(), 0, ROOT, 10)
        assert [(e.name, e.error) for e in entries] == [("mnt", errno.EACCES)]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_devices_and_fifos_need_allow_devices(site: Site) -> None:
    os.mkfifo(site.a / "fifo")
    fh = _path_of(site.fa, site.fa.root_fh(), "fifo")
    with pytest.raises(FsError, match="allow_devices"):
        site.fa.open(fh, os.O_RDONLY, ROOT)
    with pytest.raises(FsError):
        site.fa.open(site.fa.root_fh(), os.O_RDONLY | os.O_CREAT, ROOT)
    t = ExportTable.from_config([ExportConfig(site.a, "/dev-ok", ["sys"], [ClientRule()], True)])
    with LocalFs(t.exports[0], site.fa.codec) as fs:
        fd = fs.open(fs.fh_for_path("fifo"), os.O_RDONLY, ROOT)  # must not block
        os.close(fd)


# -- READDIR -------------------------------------------------------------------------------


def _make_names(d: Path, names: list[str]) -> None:
    for n in names:
        os.close(os.open(d / n, os.O_CREAT | os.O_WRONLY, 0o644))


def test_readdir_of_10000_entries_in_pages(site: Site) -> None:
    d = site.a / "big"
    d.mkdir()
    names = [f"entry-{i:05d}" for i in range(10_000)]
    _make_names(d, names)
    dfh = _path_of(site.fa, site.fa.root_fh(), "big")
    seen: list[str] = []
    cookie, verifier, pages = 0, None, 0
    while True:
        entries, eof, verifier = site.fa.readdir(dfh, cookie, ALICE, 97, verifier=verifier)
        pages += 1
        assert all(e.fh is not None and e.stat is not None and e.error is None for e in entries)
        seen += [e.name for e in entries]
        if eof:
            break
        assert len(entries) == 97
        cookie = entries[-1].cookie
    assert pages == 104
    assert len(seen) == len(set(seen)) == 10_000 and set(seen) == set(names)
    # names only, much cheaper
    entries, _, _ = site.fa.readdir(dfh, 0, ALICE, 10, with_attrs=False)
    assert len(entries) == 10 and entries[0].fh is None and entries[0].error is None


def test_readdir_while_entries_come_and_go(site: Site) -> None:
    d = site.a / "busy"
    d.mkdir()
    stable = [f"stable-{i}" for i in range(3000)]
    doomed = [f"doomed-{i}" for i in range(1000)]
    _make_names(d, stable + doomed)
    dfh = _path_of(site.fa, site.fa.root_fh(), "busy")
    rng = random.Random(7)
    seen: list[str] = []
    cookie, verifier, added = 0, None, 0
    while True:
        entries, eof, verifier = site.fa.readdir(dfh, cookie, ALICE, 50, verifier=verifier)
        seen += [e.name for e in entries]
        if eof:
            break
        cookie = entries[-1].cookie
        # between pages: remove some doomed entries, add new ones
        for _ in range(5):
            if doomed:
                os.unlink(d / doomed.pop(rng.randrange(len(doomed))))
            _make_names(d, [f"new-{added}"])
            added += 1
    assert len(seen) == len(set(seen)), "an entry was returned twice"
    assert set(stable) <= set(seen), "an entry present throughout was lost"
    assert all(n.startswith(("stable-", "doomed-", "new-")) for n in seen)
    assert not set(doomed) - set(seen), "an entry present throughout was lost"


def test_readdir_reserved_cookies_and_verifier(site: Site) -> None:
    (site.a / "x").write_text("x")
    root = site.fa.root_fh()
    for c in (1, 2):
        with pytest.raises(BadCookie):
            site.fa.readdir(root, c, ROOT, 10)
    entries, eof, verf = site.fa.readdir(root, 0, ROOT, 10)
    assert eof and [e.name for e in entries] == ["x"] and verf != 0
    with pytest.raises(CookieVerifierMismatch):
        site.fa.readdir(root, entries[0].cookie, ROOT, 10, verifier=verf ^ 1)
    # the verifier is ignored when starting over (RFC 8881 §18.23.3)
    site.fa.readdir(root, 0, ROOT, 10, verifier=verf ^ 1)
    with pytest.raises(FsError) as ei:
        site.fa.readdir(_path_of(site.fa, root, "x"), 0, ROOT, 10)
    assert ei.value.errno == errno.ENOTDIR


def test_concurrent_readdir_and_lookup_from_many_threads(site: Site) -> None:
    d = site.a / "shared"
    d.mkdir()
    names = [f"n{i}" for i in range(500)]
    _make_names(d, names)
    dfh = _path_of(site.fa, site.fa.root_fh(), "shared")
    errors: list[BaseException] = []

    def lister(creds: FsCreds) -> set[str]:
        out: list[str] = []
        cookie = 0
        while True:
            entries, eof, _ = site.fa.readdir(dfh, cookie, creds, 33)
            out += [e.name for e in entries]
            if eof:
                break
            cookie = entries[-1].cookie
        assert len(out) == len(set(out))
        return set(out)

    with ThreadPoolExecutor(6, initializer=worker_initializer()) as pool:
        futs = [pool.submit(lister, (ALICE, BOB)[i % 2]) for i in range(12)]
        futs += [pool.submit(site.fa.lookup, dfh, n, ALICE) for n in names[:100]]
        for f in futs:
            try:
                r = f.result()
                if isinstance(r, set):
                    assert r == set(names)
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)
    assert not errors
    assert threading.current_thread() is threading.main_thread()


def test_statvfs_and_fh_for_path(site: Site) -> None:
    (site.a / "f").write_text("x")
    assert site.fa.statvfs(site.fa.root_fh()).f_bsize > 0
    assert site.fa.fh_for_path("f") == _path_of(site.fa, site.fa.root_fh(), "f")
    assert site.fa.fh_for_path(site.a) == site.fa.root_fh()
    (site.b / "g").write_text("x")
    for outside in (site.b, site.b / "g", site.a / ".." / "b" / "g", Path("/etc/passwd")):
        with pytest.raises(FsError):
            site.fa.fh_for_path(outside)
