"""The `securenfs serve` process: start-up, answering, clean exit on SIGTERM, clear start errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4, AcceptStat
from tests.support.rpcserver import call_bytes, record, recv_reply


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    ready = tmp_path / "ready"
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0",
         "--state-dir", str(tmp_path / "state"), "--export", f"{share}:/share:sec=sys",
         "--ready-file", str(ready), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return proc, ready


def wait_ready(proc: subprocess.Popen[bytes], ready: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            return int(ready.read_text().split()[1])
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not become ready")


def test_serve_answers_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, ready = start(tmp_path)
    try:
        port = wait_ready(proc, ready)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(record(call_bytes(5, NFS_PROGRAM, NFS_V4, 0)))
            r = recv_reply(s)
            assert r.xid == 5 and r.accept_stat == AcceptStat.SUCCESS
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            s.settimeout(5)
            assert s.recv(10) == b""  # the connection was closed by the stopping server
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / "state").stat().st_mode & 0o077  # state directory private


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        share = tmp_path / "s"
        share.mkdir()
        out = subprocess.run(
            [sys.executable, "-m", "securenfs", "serve", "--listen", f"127.0.0.1:{port}",
             "--state-dir", str(tmp_path / "st"), "--export", f"{share}:/s:sec=sys"],
            capture_output=True, timeout=30, env=dict(os.environ),
        )
    assert out.returncode == 2
    err = out.stderr.decode()
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_serve_without_exports_explains(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "securenfs", "serve", "--config", str(tmp_path / "none.toml")],
                         capture_output=True, timeout=30)
    assert out.returncode == 2
    assert b"file not found" in out.stderr and b"Traceback" not in out.stderr


def test_unwritable_state_dir_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    share = tmp_path / "s"
    share.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "securenfs", "serve", "--listen", "127.0.0.1:0",
         "--state-dir", str(blocker / "state"), "--export", f"{share}:/s:sec=sys"],
        capture_output=True, timeout=30)
    assert out.returncode == 2
    assert b"state directory" in out.stderr and b"Traceback" not in out.stderr
