"""An independent check of the wire format: capture loopback traffic to given ports with
``dumpcap`` and decode it with Wireshark's RPC/NFS dissectors (``tshark``), which share no code
with securenfs.

``Capture(ports, path)`` records; ``decode(path, ports)`` answers how many frames the
dissectors found malformed or flagged at expert severity "error", with the first few, and
which NFSv4 operations and statuses they decoded.  ``missing_tools()`` says what is not
installed (the tests skip with a banner then; scripts/bootstrap.sh installs tshark).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Wireshark's expert severity "error" (epan/proto.h PI_ERROR); notes and warnings (an NFS
#: error status, a retransmission) are below it.
PI_ERROR = 0x00800000


def missing_tools() -> list[str]:
    return [t for t in ("dumpcap", "tshark") if shutil.which(t) is None]


def skip_banner(what: str) -> str:
    line = "!" * 78
    return (f"\n{line}\n!! {what}: tshark/dumpcap are not installed ({', '.join(missing_tools())} missing).\n"
            f"!! The wire format is NOT checked against an independent decoder.\n"
            f"!! Install them: apt-get install tshark (scripts/bootstrap.sh does).\n{line}")


class Capture:
    """dumpcap on the loopback interface, filtered to TCP ``ports``."""

    def __init__(self, ports: list[int], path: Path, *, bpf: str | None = None):
        self.ports = sorted(set(ports))
        self.path = path
        self.bpf = bpf or " or ".join(f"tcp port {p}" for p in self.ports)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        bpf = self.bpf
        self.proc = subprocess.Popen(
            ["dumpcap", "-q", "-i", "lo", "-f", bpf, "-s", "0", "-w", str(self.path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # dumpcap writes the file header once the capture runs.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.path.exists() and self.path.stat().st_size > 0:
                time.sleep(0.3)  # the filter is installed before the header is written; margin
                return
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"dumpcap exited ({self.proc.returncode}): {err}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("dumpcap did not start capturing within 15 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        time.sleep(0.3)  # let the last segments reach the capture
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


@dataclass
class Decoded:
    frames: int = 0
    rpc_frames: int = 0
    bad: list[str] = field(default_factory=list)
    #: NFSv4 operation numbers seen in calls and replies, and nfsstat4 values in replies.
    opcodes: set[int] = field(default_factory=set)
    statuses: set[int] = field(default_factory=set)

    def summary(self) -> str:
        head = "\n  ".join(self.bad[:20])
        return (f"{len(self.bad)} malformed or expert-error frame(s) of {self.frames} "
                f"({self.rpc_frames} RPC):\n  {head}")


def _ints(text: str) -> set[int]:
    out = set()
    for x in text.split(","):
        x = x.strip()
        if x:
            out.add(int(x, 0))
    return out


def decode(path: Path, ports: list[int], *, replies_only: bool = False) -> Decoded:
    """Decode ``path`` with every port as ONC RPC; ``replies_only``: judge only the server's
    replies (the requests of the bad-input tests are malformed on purpose)."""
    args = ["tshark", "-n", "-r", str(path)]
    for p in sorted(set(ports)):
        args += ["-d", f"tcp.port=={p},rpc"]
    shown = f"tcp.srcport in {{{', '.join(str(p) for p in sorted(set(ports)))}}}"
    if not replies_only:
        shown = shown.replace("tcp.srcport", "tcp.port")
    args += ["-Y", shown]
    args += ["-o", "tcp.desegment_tcp_streams:TRUE", "-o", "rpc.defragment_rpc_over_tcp:TRUE",
             "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,",
             "-e", "frame.number", "-e", "rpc.xid", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
             "-e", "_ws.expert.message", "-e", "nfs.opcode", "-e", "nfs.nfsstat4", "-e", "_ws.col.Info"]
    env = dict(os.environ, HOME=str(path.parent))  # no user profile: default preferences
    res = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"tshark failed ({res.returncode}): {res.stderr[-2000:]}")
    out = Decoded()
    for line in res.stdout.splitlines():
        cols = (line.split("\t") + [""] * 8)[:8]
        num, xid, malformed, sev, msg, ops, stats, info = cols
        out.frames += 1
        if xid:
            out.rpc_frames += 1
        out.opcodes |= _ints(ops)
        out.statuses |= _ints(stats)
        errors = [s for s in _ints(sev) if s >= PI_ERROR]
        if malformed or errors:
            out.bad.append(f"frame {num}: {msg or 'malformed'} | {info[:160]}")
    return out


# -- the whole suite's NFS traffic ------------------------------------------------------------

#: In-process test servers listen on ports of this band while the suite is recorded, so one
#: capture filter covers every server the tests start.  It lies above the kernel's ephemeral
#: range (client ports, 32768-60999 by default) and above the blocks tests/support/ports.py
#: hands to the KDC, etcd and DNS test servers (20000-60000).
BAND = (61000, 61999)
ENV = "SECURENFS_WIRE_CHECK"


class WireRecorder:
    """One dumpcap for the session over :data:`BAND`; hands out server ports and remembers
    them; at the end the servers' replies on those ports are decoded."""

    def __init__(self, directory: Path):
        self.path = directory / "suite.pcapng"
        self.ports: set[int] = set()
        self.capture = Capture([], self.path, bpf=f"tcp portrange {BAND[0]}-{BAND[1]}")

    def take_port(self) -> int:
        import random
        import socket

        rng = random.Random()
        for _ in range(200):
            p = rng.randrange(BAND[0], BAND[1] + 1)
            if p in self.ports:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    continue
            self.ports.add(p)
            return p
        raise RuntimeError(f"no free port in {BAND}")

    def check(self) -> Decoded:
        return decode(self.path, sorted(self.ports), replies_only=True)


@pytest.fixture(scope="session", autouse=True)
def suite_wire_check(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireRecorder | None]:
    """With SECURENFS_WIRE_CHECK=1 (CI sets it): capture every in-process NFS test server's
    traffic and, at the end of the session, fail (an error at teardown) when Wireshark finds a
    reply of ours malformed or in expert-error."""
    if os.environ.get(ENV) != "1":
        yield None
        return
    if missing_tools():
        import warnings

        warnings.warn(skip_banner(f"{ENV}=1"), stacklevel=1)
        yield None
        return
    from tests.support.nfsserver import NfsServer

    rec = WireRecorder(tmp_path_factory.mktemp("suite-wire"))
    rec.capture.start()
    NfsServer.recorder = rec
    try:
        yield rec
    finally:
        NfsServer.recorder = None
        rec.capture.stop()
    if rec.ports:
        dec = rec.check()
        if dec.bad or not dec.rpc_frames:
            raise AssertionError(f"Wireshark rejects replies of the NFS servers of this run ({rec.path}): "
                                 + dec.summary())
