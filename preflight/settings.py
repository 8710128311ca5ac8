"""Everything the preflight checks need to know, in one record."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securenfs.rpc.auth import KERBEROS_FLAVORS

if TYPE_CHECKING:
    from idmap.config import LdapConfig

DEFAULT_KRB5_CONF = Path("/etc/krb5.conf")
DEFAULT_KEYTAB = Path("/etc/krb5.keytab")


@dataclass(slots=True)
class ExportSpec:
    pseudo: str
    path: Path
    flavors: list[str]

    @property
    def kerberos(self) -> bool:
        return any(f in KERBEROS_FLAVORS for f in self.flavors)

    @property
    def auth_sys(self) -> bool:
        return "sys" in self.flavors

    @classmethod
    def parse(cls, text: str) -> ExportSpec:
        """``PATH:PSEUDO[:sec=FLAVOR,...]``: the server's ``--export`` form, read by its parser.

        Raises ValueError naming the argument and the form to write.
        """
        from securenfs.config import ConfigError, parse_export_option

        try:
            return cls.from_config(parse_export_option(text))
        except ConfigError as exc:
            raise ValueError(f"{exc.key} {text!r}: {exc.message} ({exc.fix})") from None

    @classmethod
    def from_config(cls, export: Any) -> ExportSpec:
        """From a ``securenfs.config.ExportConfig``."""
        return cls(str(export.pseudo), Path(export.path), list(export.sec))


@dataclass(slots=True)
class PreflightSettings:
    hostname: str = ""  # FQDN; empty = detect with socket.getfqdn()
    realm: str = ""  # empty = default_realm from krb5.conf
    krb5_conf: Path | None = None  # None = $KRB5_CONFIG or /etc/krb5.conf
    keytab: Path = DEFAULT_KEYTAB
    principals: list[str] = field(default_factory=list)  # empty = nfs/<fqdn>@<realm>
    ntp_servers: list[str] = field(default_factory=list)  # "host" or "host:port"
    dns_servers: list[str] = field(default_factory=list)  # empty = system resolver
    hosts_file: Path = Path("/etc/hosts")
    timeout: float = 10.0  # per check
    peer_timeout: float = 2.0  # per network query inside a check
    clock_warn: float = 2.0  # seconds
    clock_error: float = 60.0  # seconds; both below Kerberos' default 300 s clockskew
    clockskew: float = 300.0
    idmap_domain: str = ""
    local_realms: list[str] = field(default_factory=list)
    ldap_uris: list[str] = field(default_factory=list)
    ldap_base_dn: str = ""
    #: The [idmap.ldap] settings the ID mapper uses (bind, TLS, schema, attributes); None:
    #: anonymous bind and the RFC 2307 schema on ``ldap_uris`` / ``ldap_base_dn``.
    ldap: LdapConfig | None = None
    probe_user: str = ""
    exports: list[ExportSpec] = field(default_factory=list)
    lease_time: int = 90
    grace_time: int = 90
    state_dir: Path = Path("/var/lib/securenfs")
    #: ``[recovery] backend``: "etcd" when several nodes may serve one namespace.
    recovery_backend: str = "sqlite"

    # -- derived values -------------------------------------------------------------------------
    def fqdn(self) -> str:
        return (self.hostname or socket.getfqdn()).lower().rstrip(".")

    def krb5_conf_path(self) -> Path:
        if self.krb5_conf is not None:
            return Path(self.krb5_conf)
        env = os.environ.get("KRB5_CONFIG", "")
        first = env.split(":")[0] if env else ""
        return Path(first) if first else DEFAULT_KRB5_CONF

    @classmethod
    def from_server_config(cls, cfg: Any) -> PreflightSettings:
        """Build settings from the object ``securenfs.config.load_config`` returns."""
        server = cfg.server
        krb = cfg.kerberos
        pre = getattr(cfg, "preflight", None)
        idmap: dict[str, Any] = dict(getattr(cfg, "idmap_raw", None) or {})
        ldap = idmap.get("ldap") or {}
        ldap_cfg = _idmap_ldap(idmap)
        s = cls(
            hostname=str(getattr(server, "hostname", "") or ""),
            krb5_conf=Path(krb.krb5_conf) if getattr(krb, "krb5_conf", None) else None,
            keytab=Path(krb.keytab),
            principals=list(getattr(krb, "principals", None) or []),
            idmap_domain=str(idmap.get("domain") or ""),
            local_realms=list(idmap.get("local_realms") or []),
            ldap_uris=list(ldap.get("uris") or []),
            ldap_base_dn=ldap_cfg.base if ldap_cfg else str(ldap.get("base") or ""),
            ldap=ldap_cfg,
            exports=[ExportSpec.from_config(e) for e in getattr(cfg, "exports", [])],
            lease_time=int(getattr(server, "lease_time", 90)),
            grace_time=int(getattr(server, "grace_time", 90)),
            state_dir=Path(getattr(server, "state_dir", "/var/lib/securenfs")),
            recovery_backend=str(getattr(getattr(cfg, "recovery", None), "backend", "sqlite")),
        )
        if pre is not None:
            s.ntp_servers = list(getattr(pre, "ntp_servers", None) or [])
            s.dns_servers = list(getattr(pre, "dns_servers", None) or [])
            if getattr(pre, "hosts_file", None):
                s.hosts_file = Path(pre.hosts_file)
            if getattr(pre, "timeout", None):
                s.timeout = float(pre.timeout)
            s.probe_user = str(getattr(pre, "probe_user", None) or "")
        realm = next((p.rsplit("@", 1)[1] for p in s.principals if "@" in p), "")
        s.realm = realm
        return s


def _idmap_ldap(idmap: dict[str, Any]) -> LdapConfig | None:
    """[idmap.ldap] parsed as the ID mapper parses it (the server has already refused a
    table that does not parse; the preflight CLI then falls back to the raw keys)."""
    if not idmap.get("ldap"):
        return None
    from idmap.config import IdmapConfig, IdmapConfigError

    try:
        return IdmapConfig.from_mapping(idmap).ldap
    except IdmapConfigError:
        return None


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    if t.count(":") == 1:
        host, port = t.split(":")
        if not port.isdigit():
            raise ValueError(f"bad port in {text!r}")
        return host, int(port)
    return t, default_port
