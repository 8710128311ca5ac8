"""The real ``securenfs serve`` process and the Kerberos material for the interop guest.

:class:`InteropServer` runs the server as a subprocess on 127.0.0.1 (port 0) with a generated
TOML configuration, logging at DEBUG into a file, behind an :class:`RpcWatchRelay` (so a
restart can take a new port while the guest keeps its forward).  :class:`GuestKerberos` makes
the server and client principals in the shared test KDC and the guest's krb5.conf, keytab and
idmapd.conf.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.interop.guest import HOST_IP, Forward
from tests.interop.rpcwatch import RpcWatchRelay

SERVER_FQDN = "server.interop.test"
SERVER_SHORT = "server"
CLIENT_FQDN = "client.interop.test"
NFS_DOMAIN = "interop.test"
GUEST_NFS_PORT = 2049
GUEST_KDC_PORT = 88


@dataclass(slots=True, frozen=True)
class User:
    name: str
    uid: int
    gid: int
    password: str


USERS = (User("alice", 2001, 2000, "alice-interop-pw"), User("bob", 2002, 2000, "bob-interop-pw"))
GROUP = ("nfsusers", 2000)


@dataclass(slots=True, frozen=True)
class Export:
    pseudo: str
    sec: tuple[str, ...]


#: /all takes every flavor (negotiated order krb5p first, as a client without sec= would pick);
#: /sys only AUTH_SYS; /secure only krb5p (the WRONGSEC and fio scenarios).
EXPORTS = (
    Export("/all", ("krb5p", "krb5i", "krb5", "sys")),
    Export("/sys", ("sys",)),
    Export("/secure", ("krb5p",)),
)


def _toml_str(s: str | Path) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class GuestKerberos:
    """Principals for the interop realm and the files the guest needs."""

    realm: str
    kdc_port: int
    server_keytab: Path
    client_keytab: Path
    krb5_conf_host: Path
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, kdc: Any, workdir: Path) -> GuestKerberos:
        workdir.mkdir(parents=True, exist_ok=True)
        server_keytab = workdir / "server.keytab"
        client_keytab = workdir / "client.keytab"
        for p in (f"nfs/{SERVER_FQDN}", f"host/{CLIENT_FQDN}"):
            kdc.add_principal(p)
        kdc.extract_keytab(f"nfs/{SERVER_FQDN}", server_keytab)
        kdc.extract_keytab(f"host/{CLIENT_FQDN}", client_keytab)
        for u in USERS:
            kdc.add_principal(u.name, u.password)
        return cls(kdc.realm, int(kdc.k5.portbase), server_keytab, client_keytab,
                   Path(kdc.krb5_conf), {u.name: u.password for u in USERS})

    def guest_krb5_conf(self, kdc_address: str | None = None) -> str:
        kdc = kdc_address or f"{HOST_IP}:{GUEST_KDC_PORT}"
        # The guest has no DNS: every name is used as written, and qemu forwards TCP only.
        return f"""[libdefaults]
    default_realm = {self.realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
[realms]
    {self.realm} = {{
        kdc = {kdc}
    }}
[domain_realm]
    .{NFS_DOMAIN} = {self.realm}
    {NFS_DOMAIN} = {self.realm}
"""

    def guest_files(self) -> dict[str, bytes | Path]:
        return {
            "/etc/krb5.conf": self.guest_krb5_conf().encode(),
            "/etc/krb5.keytab": self.client_keytab,
            "/etc/idmapd.conf": guest_idmapd_conf().encode(),
        }


def guest_idmapd_conf() -> str:
    return f"[General]\nDomain = {NFS_DOMAIN}\n[Translation]\nMethod = nsswitch\n"


def guest_users_script() -> str:
    """Shell lines creating the scenario users in the guest with the server's ids."""
    lines = [f"groupadd -g {GROUP[1]} {GROUP[0]} 2>/dev/null"]
    for u in USERS:
        lines.append(f"useradd -u {u.uid} -g {u.gid} -m -s /bin/bash {u.name} 2>/dev/null")
    return "\n".join(lines) + "\n"


class InteropServer:
    """``python -m securenfs serve`` on loopback, restartable, behind the watching relay."""

    def __init__(self, workdir: Path, kerberos: GuestKerberos | None, *, lease_time: int = 30):
        self.workdir = workdir
        self.kerberos = kerberos
        self.lease_time = lease_time
        self.state_dir = workdir / "state"
        self.log_path = workdir / "server.log"
        self.config_path = workdir / "securenfs.toml"
        self.export_paths: dict[str, Path] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.relay: RpcWatchRelay | None = None
        self.starts = 0
        self._write_config()

    # -- configuration ------------------------------------------------------------------------
    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        static = self.workdir / "idmap.static"
        static.write_text(
            "".join(f"user {u.name} {u.uid} {u.gid}\n" for u in USERS)
            + f"group {GROUP[0]} {GROUP[1]} {' '.join(u.name for u in USERS)}\n")
        lines = [
            "[server]",
            f"state_dir = {_toml_str(self.state_dir)}",
            f"hostname = {_toml_str(SERVER_FQDN)}",
            f"server_owner = {_toml_str('securenfs-interop')}",
            f"lease_time = {self.lease_time}",
            f"grace_time = {self.lease_time}",
            "",
            "[preflight]",
            # The test host does not resolve the guest-side names; the checks are tested elsewhere.
            "enabled = false",
            "",
            "[idmap]",
            f"domain = {_toml_str(NFS_DOMAIN)}",
            'backends = ["static"]',
        ]
        if self.kerberos is not None:
            lines.append(f"local_realms = [{_toml_str(self.kerberos.realm)}]")
        lines += ["", "[idmap.static]", f"path = {_toml_str(static)}", ""]
        if self.kerberos is not None:
            lines += ["[kerberos]", f"keytab = {_toml_str(self.kerberos.server_keytab)}",
                      f"krb5_conf = {_toml_str(self.kerberos.krb5_conf_host)}", ""]
        for ex in EXPORTS:
            sec = ex.sec if self.kerberos is not None else tuple(s for s in ex.sec if s == "sys")
            if not sec:
                continue
            d = self.workdir / ("export" + ex.pseudo.replace("/", "_"))
            d.mkdir(parents=True, exist_ok=True)
            # World-writable with the sticky bit: users and (squashed) machine credentials can
            # make their own directories, as on a shared scratch export.
            d.chmod(0o1777)
            self.export_paths[ex.pseudo] = d
            lines += ["[[exports]]", f"path = {_toml_str(d)}", f"pseudo = {_toml_str(ex.pseudo)}",
                      "sec = [" + ", ".join(_toml_str(s) for s in sec) + "]",
                      "[[exports.clients]]", 'match = "*"', 'access = "rw"', 'squash = "none"', ""]
        self.config_path.write_text("\n".join(lines))

    # -- process ------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        ready = self.workdir / "ready"
        ready.unlink(missing_ok=True)
        env = dict(os.environ)
        if self.kerberos is not None:
            env["KRB5_CONFIG"] = str(self.kerberos.krb5_conf_host)
        env["KRB5RCACHEDIR"] = str(self.workdir)
        with open(self.log_path, "ab") as log:
            log.write(f"----- start #{self.starts + 1} at {time.strftime('%H:%M:%S')} -----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "securenfs", "serve", "--config", str(self.config_path),
                 "--listen", "127.0.0.1:0", "--ready-file", str(ready), "--log-level", "DEBUG"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                cwd=Path(__file__).resolve().parents[2])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text().strip():
                self.port = int(ready.read_text().split()[1])
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"securenfs serve exited with {self.proc.returncode}:\n"
                                   + self.log_tail(30))
            time.sleep(0.05)
        else:
            self.kill()
            raise RuntimeError("securenfs serve did not become ready:\n" + self.log_tail(30))
        self.starts += 1
        if self.relay is None:
            self.relay = RpcWatchRelay(self.port)
        else:
            self.relay.upstream_port = self.port

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to save anything (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        if self.relay is not None:
            self.relay.drop_connections()

    def stop(self) -> int | None:
        """SIGTERM: a clean stop; returns the exit status."""
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(10)
        if self.relay is not None:
            self.relay.drop_connections()
        return rc

    def close(self) -> None:
        self.stop()
        if self.relay is not None:
            self.relay.close()

    def restart_after_kill(self) -> str:
        self.kill()
        self.start()
        return f"killed with SIGKILL and restarted (start #{self.starts}, port {self.port})"

    def restart_clean(self) -> str:
        rc = self.stop()
        self.start()
        return f"stopped with SIGTERM (exit {rc}) and restarted (start #{self.starts}, port {self.port})"

    # -- guest plumbing -----------------------------------------------------------------------
    def forwards(self) -> list[Forward]:
        assert self.relay is not None
        fw = [Forward(GUEST_NFS_PORT, self.relay.port)]
        if self.kerberos is not None:
            fw.append(Forward(GUEST_KDC_PORT, self.kerberos.kdc_port))
        return fw

    def hooks(self) -> dict[str, Any]:
        return {"server-kill9": self.restart_after_kill, "server-restart": self.restart_clean}

    # -- logs ---------------------------------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_between(self, t0: float, t1: float, min_level: str = "INFO") -> list[str]:
        """Log lines stamped within [t0, t1] (host time.time()) at ``min_level`` or above."""
        levels = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
        floor = levels.get(min_level, 20)
        out = []
        for line in self.log_text().splitlines():
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[2] not in levels:
                continue
            try:
                stamp = datetime.datetime.strptime(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S,%f")
            except ValueError:
                continue
            t = stamp.timestamp()
            if t0 - 1 <= t <= t1 + 1 and levels[parts[2]] >= floor:
                out.append(line)
        return out
