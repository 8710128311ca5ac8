"""NFS byte-range locks mirrored into the kernel as OFD locks, against a real local process
(tests/support/hostlock.py runs in its own process, so its locks are really foreign):
local lock -> NFS4ERR_DENIED, NFS lock -> local EAGAIN, split/merge/downgrade equal to
/proc/locks after every step, release on LOCKU/FREE_STATEID/CLOSE/revocation/stop/kill -9,
reclaim after a restart, a local grab during grace -> NFS4ERR_RECLAIM_CONFLICT, the
lock-descriptor bound (RFC 8881 §9, §18.10-18.12, §8.4.2.1, §15.1.9.5)."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from securenfs.client.nfs4 import Nfs4Error
from securenfs.locking.ofd import KERNEL_END
from securenfs.nfs4.xdr4 import WRITE_LT, StateOwner
from securenfs.proto.constants import Stat
from securenfs.state.opens import HOST_OWNER, LIMIT_OWNER
from tests.integration.test_recovery_restart import RecoveryProcess, come_back, holder
from tests.support.hostlock import HostLocker, proc_locks
from tests.support.nfsserver import NfsServer, ProcessServer, mounted_client, run

ALL = (1 << 64) - 1


async def status_of(coro: Any) -> tuple[int, Any]:
    """(status, LOCK4denied or None) of a LOCK, 0 when granted."""
    try:
        await coro
    except Nfs4Error as exc:
        res = exc.reply.results[-1][1] if exc.reply is not None else None
        return int(exc.status), getattr(res, "denied", None)
    return 0, None


def nfs_view(srv: NfsServer, fh: bytes) -> list[tuple[str, str, int, int | None]]:
    """What /proc/locks must show for the NFS lock table of ``fh``: one OFD lock per range of
    every owner, cut to the kernel's byte space."""
    svc = srv.server.nfs.service  # type: ignore[union-attr]

    async def snapshot() -> list[tuple[int, int, int]]:
        f = svc.state.files.get(fh)
        return [] if f is None else [(a, b, int(t)) for rs in f.locks.owners.values() for a, b, t in rs]

    out = []
    for a, b, t in srv.on_server(snapshot()):
        if a >= KERNEL_END:
            continue
        out.append(("OFDLCK", "WRITE" if t == WRITE_LT else "READ", a, None if b >= KERNEL_END else b - 1))
    return sorted(out, key=lambda r: (r[2], r[0], r[1], -1 if r[3] is None else r[3]))


def lock_fds(srv: NfsServer) -> int:
    svc = srv.server.nfs.service  # type: ignore[union-attr]

    async def count() -> int:
        return int(svc.state.lock_fds)

    return srv.on_server(count())


@contextmanager
def own_server(tmp_path: Path, lease_time: int = 90, **server: Any) -> Iterator[tuple[NfsServer, Path]]:
    """A server with one sys export /a and ``[server]`` keys set, and its file "db"."""
    srv = NfsServer(tmp_path, [("/a", ["sys"])], lease_time=lease_time)
    for key, value in server.items():
        setattr(srv.cfg.server, key, value)
    srv.start()
    try:
        path = srv.paths["/a"] / "db"
        path.write_bytes(b"\0" * 4096)
        yield srv, path
    finally:
        srv.stop()


def test_local_lock_denies_nfs_lock_and_its_release_lets_the_retry_in(state_server: NfsServer) -> None:
    path = state_server.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)
    with HostLocker(path) as local:
        assert local.lock("posix", "w", 10, 10)

        async def main() -> None:
            a, root = await mounted_client(state_server)
            f = await a.open(root, "db")
            # RFC 8881 §18.10.4: NFS4ERR_DENIED carries the conflicting lock (LOCK4denied);
            # a lock outside NFS is reported with client id 0 and a recognisable owner.
            st, d = await status_of(a.lock(f, 15, 5, lock_owner=b"pidA"))
            assert st == Stat.DENIED
            assert (d.offset, d.length, d.locktype) == (10, 10, WRITE_LT)
            assert d.owner == StateOwner(0, HOST_OWNER + f" pid={local.proc.pid}".encode())
            # LOCKT sees it too, through a short-lived descriptor (no NFS lock on the file yet).
            t = await a.lockt(f.fh, 0, 11)
            assert t.status == Stat.DENIED and t.denied is not None and t.denied.offset == 10
            assert (await a.lockt(f.fh, 20, 5)).status == 0
            # The rest of the file is free: granted, and in the kernel.
            ls = await a.lock(f, 20, 30, lock_owner=b"pidA")
            assert ("OFDLCK", "WRITE", 20, 49) in proc_locks(path)
            # A blocking request (WRITEW_LT) is answered at once; the client polls (RFC 8881
            # §9.6).  After the local process lets go, the client's next retry gets the range.
            st, _ = await status_of(a.lock(f, 10, 10, lock_stateid=ls, wait=True))
            assert st == Stat.DENIED
            local.unlock("posix", 10, 10)
            ls = await a.lock(f, 10, 10, lock_stateid=ls, wait=True)
            assert proc_locks(path) == nfs_view(state_server, f.fh) == [("OFDLCK", "WRITE", 10, 49)]
            # ... and now the local process is refused.
            assert not local.lock("posix", "r", 12, 1)
            await a.close()

        run(main())


def test_nfs_lock_refuses_local_posix_and_ofd_locks_until_unlocked(state_server: NfsServer) -> None:
    path = state_server.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)

    async def main() -> None:
        a, root = await mounted_client(state_server)
        f = await a.open(root, "db")
        ls = await a.lock(f, 0, 100, lock_owner=b"writer")
        rs = await a.lock(f, 200, 100, write=False, lock_owner=b"reader")
        with HostLocker(path) as local:
            for kind in ("posix", "ofd"):
                assert not local.lock(kind, "w", 50, 1), kind
                assert not local.lock(kind, "r", 99, 10), kind
                # A read lock shares with an NFS read lock; a write lock does not.
                assert local.lock(kind, "r", 250, 10), kind
                assert not local.lock(kind, "w", 250, 10), kind
                local.unlock(kind, 250, 10)
                # F_GETLK names the server's OFD lock (pid -1: not a process's lock).
                assert local.test(kind, "w", 0, 1) == ("w", 0, 100, -1)
            await a.locku(f.fh, ls, 0, 100)
            await a.locku(f.fh, rs, 200, 100)
            for kind in ("posix", "ofd"):
                assert local.lock(kind, "w", 0, 300), kind
                local.unlock(kind, 0, 300)
        await a.close()

    run(main())


def test_split_merge_upgrade_downgrade_match_proc_locks(state_server: NfsServer) -> None:
    path = state_server.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)

    async def main() -> None:
        a, root = await mounted_client(state_server)
        b, _ = await mounted_client(state_server)
        fa = await a.open(root, "db")
        fb = await b.open(root, "db")

        def same() -> None:
            assert proc_locks(path) == nfs_view(state_server, fa.fh)

        la = await a.lock(fa, 0, 100, lock_owner=b"A")
        same()
        la = await a.locku(fa.fh, la, 40, 20)  # split
        same()
        assert [r[2:] for r in proc_locks(path)] == [(0, 39), (60, 99)]
        lb = await b.lock(fb, 45, 10, lock_owner=b"B")
        same()
        la = await a.lock(fa, 0, 20, write=False, lock_stateid=la)  # downgrade part of it
        same()
        lb = await b.lock(fb, 5, 5, write=False, lock_stateid=lb)
        same()
        # The upgrade is refused (B reads 5..9): the kernel keeps A's read lock as it was.
        assert (await status_of(a.lock(fa, 0, 20, lock_stateid=la)))[0] == Stat.DENIED
        same()
        lb = await b.locku(fb.fh, lb, 0, ALL)
        same()
        la = await a.lock(fa, 0, 20, lock_stateid=la)  # upgrade
        la = await a.lock(fa, 20, 20, lock_stateid=la)  # merge with 20..39
        same()
        assert [r[1:] for r in proc_locks(path)] == [("WRITE", 0, 39), ("WRITE", 60, 99)]
        la = await a.lock(fa, 1000, ALL, lock_stateid=la)  # to the end of the file
        same()
        assert proc_locks(path)[-1] == ("OFDLCK", "WRITE", 1000, None)
        # Beyond the kernel's byte space (2**63): in the NFS table only.
        la = await a.locku(fa.fh, la, 1000, ALL)
        la = await a.lock(fa, KERNEL_END + 10, 10, lock_stateid=la)
        same()
        assert all(r[2] < 1000 for r in proc_locks(path))
        la = await a.locku(fa.fh, la, 0, ALL)
        same()
        assert proc_locks(path) == []
        await a.close()
        await b.close()

    run(main())


def test_read_locks_move_to_a_writable_descriptor_after_an_open_upgrade(state_server: NfsServer) -> None:
    path = state_server.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)

    async def main() -> None:
        a, root = await mounted_client(state_server)
        f = await a.open(root, "db", access=1)  # read only: the lock descriptor is O_RDONLY
        ls = await a.lock(f, 0, 10, write=False, lock_owner=b"A")
        ls = await a.lock(f, 20, 10, write=False, lock_stateid=ls)
        with HostLocker(path) as local:
            assert (await status_of(a.lock(f, 0, 10, lock_stateid=ls)))[0] == Stat.OPENMODE
            f = await a.open(root, "db", access=3)  # the same open-owner: upgraded
            ls = await a.lock(f, 0, 10, lock_stateid=ls)
            assert proc_locks(path) == nfs_view(state_server, f.fh) == [
                ("OFDLCK", "WRITE", 0, 9), ("OFDLCK", "READ", 20, 29)]
            assert lock_fds(state_server) == 1
            assert not local.lock("posix", "w", 25, 1)
        await a.close()

    run(main())


def test_kernel_locks_go_with_free_stateid_close_and_revocation(tmp_path: Path) -> None:
    with own_server(tmp_path, lease_time=5) as (srv, path):
        async def main() -> None:
            a, root = await mounted_client(srv)
            fa = await a.open(root, "db")
            la = await a.lock(fa, 0, 10, lock_owner=b"A")
            assert lock_fds(srv) == 1
            la = await a.locku(fa.fh, la, 0, 10)
            assert proc_locks(path) == [] and lock_fds(srv) == 1  # kept until FREE_STATEID
            await a.free_stateid(la)
            assert lock_fds(srv) == 0
            la = await a.lock(fa, 0, 10, lock_owner=b"A")
            await a.locku(fa.fh, la, 0, 10)
            await a.close_file(fa)
            assert lock_fds(srv) == 0
            # A courtesy client (lease expired) keeps its kernel lock: a local process cannot
            # make the server revoke it, so it is refused ...
            fa = await a.open(root, "db")
            await a.lock(fa, 0, 10, lock_owner=b"A")
            await asyncio.sleep(5 * 1.5 + 1)  # a's lease runs out (it sends no SEQUENCE)
            with HostLocker(path) as local:
                assert not local.lock("posix", "w", 0, 1)
                # ... until an NFS client's conflicting LOCK revokes the courtesy client's state
                # (a client of its own: one idle through the wait would have expired too).
                b, root = await mounted_client(srv)
                fb = await b.open(root, "db")
                await b.lock(fb, 5, 10, lock_owner=b"B")
                assert proc_locks(path) == nfs_view(srv, fb.fh) == [("OFDLCK", "WRITE", 5, 14)]
                assert local.lock("posix", "w", 0, 5)
            await b.close()

        run(main())


def test_server_stop_and_kill_9_free_the_kernel_locks(tmp_path: Path) -> None:
    srv = NfsServer(tmp_path, [("/a", ["sys"])])
    srv.start()
    path = srv.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)
    try:
        async def hold() -> None:
            a, root = await mounted_client(srv)
            f = await a.open(root, "db")
            await a.lock(f, 0, 100, lock_owner=b"A")
            await a.close()

        run(hold())
        assert proc_locks(path) == [("OFDLCK", "WRITE", 0, 99)]
    finally:
        srv.stop()
    # A clean stop closes every lock descriptor.
    assert proc_locks(path) == []

    (tmp_path / "p").mkdir()
    proc = ProcessServer(tmp_path / "p")
    proc.start()
    try:
        share_file = proc.share / "db"
        share_file.write_bytes(b"\0" * 4096)

        async def hold2() -> None:
            from securenfs.client.nfs4 import Nfs4Client
            c = await Nfs4Client.connect("127.0.0.1", proc.port)
            root = await c.mount("/share")
            f = await c.open(root, "db")
            await c.lock(f, 0, 100, lock_owner=b"A")

        run(hold2())
        with HostLocker(share_file) as local:
            assert not local.lock("posix", "w", 0, 1)
            proc.kill()
            # kill -9: the kernel closed the server's descriptors and dropped its locks.
            assert local.lock("posix", "w", 0, 1)
    finally:
        proc.kill()


def test_reclaim_retakes_kernel_locks_and_a_local_grab_during_grace_conflicts(tmp_path: Path) -> None:
    srv = RecoveryProcess(tmp_path)
    srv.start()
    try:
        async def before() -> tuple[Any, ...]:
            a, fa, _ = await holder(srv.port, "a", b"data of A", 0)
            b, fb, _ = await holder(srv.port, "b", b"data of B", 0)
            for c in (a, b):
                await c.close()
            return a, fa, b, fb

        a, fa, b, fb = run(before())
        assert proc_locks(srv.share / "a") == [("OFDLCK", "WRITE", 0, 99)]
        srv.kill()
        assert proc_locks(srv.share / "a") == []
        srv.start()
        assert srv.status()["state"] == "in_grace"
        with HostLocker(srv.share / "b") as local:
            # A local process takes B's range while the server waits for reclaims.
            assert local.lock("posix", "w", 50, 10)

            async def during() -> None:
                a2 = await come_back(srv.port, a)
                g = await a2.reclaim_open(fa.fh)
                await a2.reclaim_lock(g, 0, 100)
                b2 = await come_back(srv.port, b)
                h = await b2.reclaim_open(fb.fh)
                # RFC 8881 §15.1.9.5: the reclaim "has encountered a conflict and cannot be
                # satisfied".
                assert (await status_of(b2.reclaim_lock(h, 0, 100)))[0] == Stat.RECLAIM_CONFLICT
                # The server still serves: B reclaims the part the local process left alone.
                await b2.reclaim_lock(h, 0, 50, lock_owner=b"lock-owner-2")
                for c in (a2, b2):
                    await c.reclaim_complete()
                    await c.close()

            run(during())
            assert proc_locks(srv.share / "a") == [("OFDLCK", "WRITE", 0, 99)]
            assert ("OFDLCK", "WRITE", 0, 49) in proc_locks(srv.share / "b")
    finally:
        srv.kill()


def test_lock_descriptors_are_bounded(tmp_path: Path) -> None:
    with own_server(tmp_path, max_lock_files=3) as (srv, _path):
        for i in range(4):
            (srv.paths["/a"] / f"f{i}").write_bytes(b"\0" * 10)

        async def main() -> None:
            a, root = await mounted_client(srv)
            files = [await a.open(root, f"f{i}") for i in range(4)]
            sids = [await a.lock(files[i], 0, 1, lock_owner=b"A") for i in range(3)]
            svc = srv.server.nfs.service  # type: ignore[union-attr]
            assert lock_fds(srv) == 3 and svc.state.fds.held == 3
            # At the bound: RFC 8881 §15.2 has NFS4ERR_DELAY for LOCK (NFS4ERR_RESOURCE is
            # not an NFSv4.1 error); nothing is recorded.
            assert (await status_of(a.lock(files[3], 0, 1, lock_owner=b"A")))[0] == Stat.DELAY
            assert lock_fds(srv) == 3 and proc_locks(srv.paths["/a"] / "f3") == []
            # More locks through a descriptor already held need no new one.
            sids[0] = await a.lock(files[0], 5, 1, lock_stateid=sids[0])
            # One owner lets go of a file: the fourth LOCK goes through.
            sids[0] = await a.locku(files[0].fh, sids[0], 0, ALL)
            await a.free_stateid(sids[0])
            await a.lock(files[3], 0, 1, lock_owner=b"A")
            assert lock_fds(srv) == 3
            assert proc_locks(srv.paths["/a"] / "f3") == [("OFDLCK", "WRITE", 0, 0)]
            await a.close()

        run(main())


def test_kernel_locks_off_leaves_the_kernel_alone(tmp_path: Path) -> None:
    with own_server(tmp_path, kernel_locks=False) as (srv, path):
        async def main() -> None:
            a, root = await mounted_client(srv)
            f = await a.open(root, "db")
            await a.lock(f, 0, 5, write=False, lock_owner=b"A")
            assert proc_locks(path) == [] and lock_fds(srv) == 0
            await a.close()

        run(main())


def test_kernel_lock_survives_other_descriptors_of_the_file_closing(state_server: NfsServer) -> None:
    """Why OFD locks: the server's I/O descriptors (and any descriptor this process opens)
    come and go; a POSIX lock would go with the first of them to close."""
    path = state_server.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)

    async def main() -> None:
        a, root = await mounted_client(state_server)
        f = await a.open(root, "db", owner=b"locker")
        await a.lock(f, 0, 10, lock_owner=b"A")
        g = await a.open(root, "db", owner=b"other")
        await a.write(g.fh, 100, b"data", g.stateid)
        assert (await a.read(f.fh, 100, 4, f.stateid)).data == b"data"
        await a.close_file(g)
        # The server is this very process (it runs on a thread here): open and close the file.
        fd = os.open(path, os.O_RDONLY)
        os.close(fd)
        assert proc_locks(path) == [("OFDLCK", "WRITE", 0, 9)]
        await a.close()

    run(main())


def test_out_of_descriptors_is_nfs4err_delay_never_a_failed_lock(state_server: NfsServer) -> None:
    path = state_server.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)

    async def main() -> None:
        a, root = await mounted_client(state_server)
        f = await a.open(root, "db")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        used = {int(n) for n in os.listdir("/proc/self/fd")}
        free = next(n for n in range(soft) if n not in used)
        # No descriptor number left for the server (this process): the lock descriptor's open
        # gets EMFILE.
        resource.setrlimit(resource.RLIMIT_NOFILE, (free, hard))
        try:
            st, _ = await status_of(a.lock(f, 0, 10, lock_owner=b"A"))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert st == Stat.DELAY
        assert lock_fds(state_server) == 0 and proc_locks(path) == []
        # The retry, with descriptors to spare, is granted.
        await a.lock(f, 0, 10, lock_owner=b"A")
        assert proc_locks(path) == [("OFDLCK", "WRITE", 0, 9)]
        await a.close()

    run(main())


def test_lockt_on_a_directory_is_isdir_and_the_server_keeps_serving(state_server: NfsServer) -> None:
    (state_server.paths["/a"] / "dir").mkdir()
    (state_server.paths["/a"] / "db").write_bytes(b"\0" * 10)

    async def main() -> None:
        a, root = await mounted_client(state_server)
        d = await a.lookup_path("/a/dir")
        # RFC 8881 §15.2 lists NFS4ERR_ISDIR among LOCKT's errors: a directory has no byte ranges.
        assert (await a.lockt(d, 0, 1)).status == Stat.ISDIR
        f = await a.open(root, "db")
        assert (await a.lockt(f.fh, 0, 1)).status == 0
        await a.close()

    run(main())


def test_denied_by_a_local_lock_on_the_wire_tshark(state_server: NfsServer, tmp_path: Path) -> None:
    """LOCK4denied as an independent decoder (Wireshark) reads it: RFC 8881 §18.10.2, the
    conflicting range, type and owner (client id 0, the host-lock owner) after NFS4ERR_DENIED."""
    path = state_server.paths["/a"] / "db"
    path.write_bytes(b"\0" * 4096)
    pcap = tmp_path / "lock.pcap"
    port = state_server.port
    cap = subprocess.Popen(["tshark", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert cap.stderr is not None
        for _ in range(50):  # "Capturing on 'Loopback: lo'" once it listens
            if "Capturing on" in cap.stderr.readline():
                break
        with HostLocker(path) as local:
            assert local.lock("ofd", "r", 100, 50)

            async def main() -> None:
                a, root = await mounted_client(state_server)
                f = await a.open(root, "db")
                assert (await status_of(a.lock(f, 120, 10, lock_owner=b"A")))[0] == Stat.DENIED
                await a.close()

            run(main())
        time.sleep(1)
    finally:
        cap.terminate()
        cap.wait(20)
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},rpc", "-Y", "nfs.nfsstat4 == 10010",
                          "-T", "fields", "-E", "separator=|", "-e", "nfs.offset4", "-e", "nfs.length4",
                          "-e", "nfs.locktype4", "-e", "nfs.clientid", "-e", "nfs.lock_owner4"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")[0]
    offset, length, ltype, clientid, owner = out.split("|")
    assert (int(offset), int(length), int(ltype), int(clientid, 0)) == (100, 50, 1, 0)
    assert bytes.fromhex(owner.replace(":", "")) == HOST_OWNER


def test_byte_ranges_per_client_are_bounded_and_the_server_keeps_serving(tmp_path: Path) -> None:
    with own_server(tmp_path, max_lock_ranges=10) as (srv, path):
        async def main() -> None:
            a, root = await mounted_client(srv)
            b, _ = await mounted_client(srv)
            f = await a.open(root, "db")
            ls = await a.lock(f, 0, 1, lock_owner=b"A")
            for i in range(1, 9):  # 9 ranges: one more LOCK could make 11
                ls = await a.lock(f, 10 * i, 1, lock_stateid=ls)
            st, d = await status_of(a.lock(f, 500, 1, lock_stateid=ls))
            assert st == Stat.DENIED
            assert (d.offset, d.length, d.owner) == (500, 1, StateOwner(0, LIMIT_OWNER))
            # Nothing was taken: not in the table, not in the kernel.
            assert len(proc_locks(path)) == 9 and proc_locks(path) == nfs_view(srv, f.fh)
            # Another client is not affected, and unlocking makes room again.
            fb = await b.open(root, "db")
            await b.lock(fb, 1000, 1, lock_owner=b"B")
            ls = await a.locku(f.fh, ls, 70, 1)
            await a.lock(f, 500, 1, lock_stateid=ls)
            assert proc_locks(path) == nfs_view(srv, f.fh)
            await a.close()
            await b.close()

        run(main())
