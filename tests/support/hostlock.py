"""A local process that takes byte-range locks on an exported file (``fcntl``), so that tests
can see the kernel's lock table from outside the server: its locks are really foreign to the
server's (another process, its own open file descriptions).

``HostLocker(path)`` starts ``python -m tests.support.hostlock PATH`` and talks to it one line
at a time.  ``kind`` is ``"posix"`` (F_SETLK, owned by the process) or ``"ofd"``
(F_OFD_SETLK, owned by the locker's own open file description).
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

_FLOCK = struct.Struct("hhqqi4x")
_TYPES = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK, "u": fcntl.F_UNLCK}
_NAMES = {v: k for k, v in _TYPES.items()}
_SET = {"posix": fcntl.F_SETLK, "ofd": fcntl.F_OFD_SETLK}
_GET = {"posix": fcntl.F_GETLK, "ofd": fcntl.F_OFD_GETLK}


class HostLocker:
    def __init__(self, path: Path | str):
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.hostlock", str(path)], cwd=root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._read() == "ready"

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the local locker process died")
        return line.strip()

    def _ask(self, *words: Any) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def lock(self, kind: str, ltype: str, start: int, length: int) -> bool:
        """Take (or with ``ltype`` "u" release) a lock; False on EAGAIN (a conflict)."""
        answer = self._ask("set", kind, ltype, start, length)
        assert answer in ("ok", "EAGAIN"), answer
        return answer == "ok"

    def unlock(self, kind: str, start: int, length: int) -> None:
        assert self.lock(kind, "u", start, length)

    def test(self, kind: str, ltype: str, start: int, length: int) -> tuple[str, int, int, int] | None:
        """F_GETLK / F_OFD_GETLK: (type, start, length, pid) of a conflicting lock, or None."""
        answer = self._ask("get", kind, ltype, start, length).split()
        if answer[0] == "none":
            return None
        return answer[1], int(answer[2]), int(answer[3]), int(answer[4])

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)

    def __enter__(self) -> HostLocker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def proc_locks(path: Path | str) -> list[tuple[str, str, int, int | None]]:
    """The kernel's locks on ``path`` from /proc/locks: (kind, type, first byte, last byte
    or None for "to EOF"), sorted.  kind is POSIX, OFDLCK or FLOCK."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    out = []
    with open("/proc/locks") as f:
        for line in f:
            w = line.split()
            if w[1] == "->":  # a waiter
                continue
            if w[5] == dev:
                out.append((w[1], w[3], int(w[6]), None if w[7] == "EOF" else int(w[7])))
    return sorted(out, key=lambda r: (r[2], r[0], r[1], -1 if r[3] is None else r[3]))


def _main(path: str) -> None:
    fd = os.open(path, os.O_RDWR)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, kind, ltype, start, length = line.split()
        arg = _FLOCK.pack(_TYPES[ltype], os.SEEK_SET, int(start), int(length), 0)
        if cmd == "set":
            try:
                fcntl.fcntl(fd, _SET[kind], arg)
                print("ok", flush=True)
            except OSError:
                print("EAGAIN", flush=True)
        else:
            t, _w, s, n, pid = _FLOCK.unpack(fcntl.fcntl(fd, _GET[kind], arg))
            print("none" if t == fcntl.F_UNLCK else f"lock {_NAMES[t]} {s} {n} {pid}", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1])
