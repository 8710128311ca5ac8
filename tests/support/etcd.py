"""A real etcd cluster (Debian's etcd-server) on 127.0.0.1 for tests.

Members keep their data on /dev/shm (etcd 3.4 cannot skip fsync; tmpfs makes it cheap) and
are stopped by PID.  ``etcd_cluster`` is a module-scoped fixture with three members.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.ports import free_port_block

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"


@dataclass
class EtcdCluster:
    members: list[EtcdMember]
    token: str
    base_dir: Path
    _all_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)

    def start_member(self, i: int, state: str = "new") -> None:
        m = self.members[i]
        m.log = self.base_dir / f"{m.name}.log"
        cmd = [
            ETCD, "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{m.client_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-cluster", self._initial_cluster(), "--initial-cluster-state", state,
            "--initial-cluster-token", self.token, "--heartbeat-interval", "50",
            "--election-timeout", "500", "--logger", "zap", "--log-outputs", str(m.log),
        ]
        m.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self._all_procs.append(m.proc)

    def stop_member(self, i: int, sig: int = signal.SIGTERM) -> None:
        m = self.members[i]
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(sig)
            try:
                m.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(timeout=10)
        m.proc = None

    def healthy(self, i: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.members[i].endpoint}/health", timeout=1) as r:
                return b'"health":"true"' in r.read()
        except OSError:
            return False

    def wait_healthy(self, indexes: list[int] | None = None, timeout: float = 30.0) -> None:
        idx = list(range(len(self.members))) if indexes is None else indexes
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.healthy(i) for i in idx):
                return
            for i in idx:
                p = self.members[i].proc
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"etcd member {self.members[i].name} exited: "
                                       f"{self.members[i].log.read_text()[-2000:] if self.members[i].log else ''}")
            time.sleep(0.05)
        raise RuntimeError("etcd cluster not healthy in time")

    def stop(self) -> None:
        for i in range(len(self.members)):
            self.stop_member(i)
        for p in self._all_procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_etcd_cluster(size: int = 3) -> EtcdCluster:
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    base = Path(tempfile.mkdtemp(prefix="securenfs-etcd-", dir=shm))
    port = free_port_block(2 * size)
    members = [EtcdMember(f"m{i}", port + 2 * i, port + 2 * i + 1, base / f"m{i}") for i in range(size)]
    cluster = EtcdCluster(members, f"securenfs-test-{os.getpid()}-{port}", base)
    atexit.register(cluster.stop)
    try:
        for i in range(size):
            cluster.start_member(i)
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def etcd_cluster():
    if not os.path.exists(ETCD):
        pytest.skip("etcd-server is not installed")
    cluster = start_etcd_cluster(3)
    try:
        yield cluster
    finally:
        cluster.stop()
