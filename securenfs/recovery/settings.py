"""The ``[recovery]`` configuration section and building the recovery service from it.

::

    [recovery]
    backend = "sqlite"            # or "etcd" for several nodes serving one namespace
    # etcd only:
    node_id = "nfs1"              # unique per node; server_owner/server_scope stay identical
    etcd_endpoints = ["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"]
    etcd_prefix = "/securenfs"
    member_ttl = 10               # seconds until a dead node stops being a member
    etcd_timeout = 5              # seconds per etcd request before trying the next member

The grace period length is ``server.grace_time`` (default: the lease time).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenfs.recovery.grace import GraceManager
from securenfs.recovery.service import Recovery


class RecoveryConfigError(ValueError):
    """A bad ``[recovery]`` value; the message names the key and the fix."""


@dataclass(slots=True)
class RecoverySettings:
    backend: str = "sqlite"
    node_id: str | None = None
    etcd_endpoints: list[str] = field(default_factory=list)
    etcd_prefix: str = "/securenfs"
    member_ttl: int = 10
    etcd_timeout: float = 5.0


def settings_from_mapping(section: Mapping[str, Any]) -> RecoverySettings:
    """Read a parsed TOML ``[recovery]`` table; unknown keys and bad values are errors."""
    s = RecoverySettings()
    known = {"backend", "node_id", "etcd_endpoints", "etcd_prefix", "member_ttl", "etcd_timeout"}
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean recovery.{close[0]}?" if close else f"known: {', '.join(sorted(known))}"
            raise RecoveryConfigError(f"recovery.{key}: unknown key ({hint})")
    backend = section.get("backend", "sqlite")
    if backend not in ("sqlite", "etcd"):
        raise RecoveryConfigError(f"recovery.backend = {backend!r}: use \"sqlite\" (one server) or \"etcd\" "
                                  "(several nodes serving one namespace)")
    s.backend = backend
    node_id = section.get("node_id")
    if node_id is not None and (not isinstance(node_id, str) or not node_id or "/" in node_id):
        raise RecoveryConfigError(f"recovery.node_id = {node_id!r}: a non-empty name without '/', unique per node")
    s.node_id = node_id
    eps = section.get("etcd_endpoints", [])
    if isinstance(eps, str):
        eps = [e.strip() for e in eps.split(",") if e.strip()]
    if not isinstance(eps, list) or not all(isinstance(e, str) and _is_endpoint(e) for e in eps):
        raise RecoveryConfigError(f"recovery.etcd_endpoints = {eps!r}: a list of \"host:port\" strings")
    s.etcd_endpoints = [e.removeprefix("http://") for e in eps]
    prefix = section.get("etcd_prefix", s.etcd_prefix)
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise RecoveryConfigError(f"recovery.etcd_prefix = {prefix!r}: a key prefix starting with '/'")
    s.etcd_prefix = prefix
    ttl = section.get("member_ttl", s.member_ttl)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 2 <= ttl <= 600:
        raise RecoveryConfigError(f"recovery.member_ttl = {ttl!r}: whole seconds between 2 and 600")
    s.member_ttl = ttl
    timeout = section.get("etcd_timeout", s.etcd_timeout)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0.5 <= timeout <= 60:
        raise RecoveryConfigError(f"recovery.etcd_timeout = {timeout!r}: seconds between 0.5 and 60")
    s.etcd_timeout = float(timeout)
    if s.backend == "etcd":
        if not s.node_id:
            raise RecoveryConfigError("recovery.node_id is required with backend = \"etcd\": give each node "
                                      "its own name (e.g. its host name)")
        if not s.etcd_endpoints:
            raise RecoveryConfigError("recovery.etcd_endpoints is required with backend = \"etcd\": list "
                                      "the etcd members as \"host:port\"")
    return s


def _is_endpoint(e: str) -> bool:
    host, sep, port = e.removeprefix("http://").rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def build_recovery(settings: RecoverySettings, state_dir: Path, *, grace_time: float,
                   lease_time: float) -> Recovery:
    """The recovery service for the server; call ``await recovery.start(boot_epoch)`` at
    start (a RecoveryError there means: refuse to start) and ``await recovery.stop()`` at stop."""
    grace = GraceManager(grace_time, max_extension=lease_time)
    if settings.backend == "etcd":
        from securenfs.recovery.etcd import EtcdRecoveryStore

        assert settings.node_id is not None
        store = EtcdRecoveryStore(settings.node_id, settings.etcd_endpoints, prefix=settings.etcd_prefix,
                                  member_ttl=settings.member_ttl, timeout=settings.etcd_timeout,
                                  grace_time=grace_time)
        return Recovery(store, grace, cluster=store, lease_time=lease_time)
    from securenfs.recovery.sqlite import SqliteRecoveryStore

    return Recovery(SqliteRecoveryStore(state_dir), grace, lease_time=lease_time)
