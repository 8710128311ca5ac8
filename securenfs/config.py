"""The server configuration: one TOML file parsed into typed, validated objects.

Every error names the file, the key and the fix.  The essentials can also be given on the
command line (``--listen``, ``--state-dir``, ``--keytab``, ``--export``); those override the
file.  ``securenfs check-config`` prints the effective configuration (:func:`dump`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenfs.recovery.settings import RecoveryConfigError, RecoverySettings, settings_from_mapping

log = logging.getLogger("securenfs.config")

DEFAULT_CONFIG_PATH = Path("/etc/securenfs/securenfs.toml")
FLAVORS = ("krb5p", "krb5i", "krb5", "sys")
KERBEROS_FLAVORS = frozenset({"krb5p", "krb5i", "krb5"})
MIN_SAFE_LEASE = 30


class ConfigError(Exception):
    def __init__(self, source: str, key: str, message: str, fix: str = ""):
        self.source, self.key, self.message, self.fix = source, key, message, fix
        text = f"{source}: {key}: {message}"
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)


@dataclass(slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(slots=True)
class ServerConfig:
    listen: list[ListenAddress] = field(default_factory=lambda: [ListenAddress("0.0.0.0", 2049)])
    state_dir: Path = Path("/var/lib/securenfs")
    #: NFSv4.1 server_owner major id and server_scope (RFC 8881 §2.10.4).  Identical on every
    #: node of a cluster; never derived from the host name.  When absent, a random identity is
    #: created once and kept in the state directory.
    server_owner: str | None = None
    server_scope: str | None = None
    hostname: str = ""
    lease_time: int = 90
    grace_time: int = 90
    max_record_size: int = 4 * 1024 * 1024 + 64 * 1024
    threads: int = 16
    admin_socket: Path | None = None
    #: Run metadata calls (GETATTR's stat, LOOKUP, ACCESS) on the event-loop thread instead
    #: of handing them to a worker thread (2x the GETATTR rate here); turn off when the
    #: exported file systems can be slow to answer a stat (a network or failing disk).
    inline_metadata: bool = True
    #: Mirror every NFS byte-range lock into the kernel as an OFD lock (docs/locking.md).
    kernel_locks: bool = True
    #: Lock descriptors (one per lock-owner and file with kernel locks) held at most.
    max_lock_files: int = 512
    #: Byte ranges one client may hold locked on all files together.
    max_lock_ranges: int = 10000


@dataclass(slots=True)
class KerberosConfig:
    keytab: Path = Path("/etc/krb5.keytab")
    #: Acceptor principals; empty means nfs/<hostname> (any realm in the keytab).
    principals: list[str] = field(default_factory=list)
    krb5_conf: Path | None = None
    max_contexts: int = 10000
    max_contexts_per_peer: int = 256
    #: Seconds an unused RPCSEC_GSS context is kept (it also ends with its ticket).
    context_idle_timeout: int = 3600
    seq_window: int = 128
    fast_path: bool = True


@dataclass(slots=True)
class PreflightConfig:
    ntp_servers: list[str] = field(default_factory=list)
    dns_servers: list[str] = field(default_factory=list)
    hosts_file: Path = Path("/etc/hosts")
    timeout: float = 10.0
    probe_user: str | None = None
    enabled: bool = True
    strict: bool = False


@dataclass(slots=True)
class ClientRule:
    match: str = "*"
    access: str = "rw"  # "rw" | "ro"
    squash: str = "root"  # "none" | "root" | "all"
    anonuid: int = 65534
    anongid: int = 65534

    def matches_address(self, addr: str) -> bool | None:
        """True/False for address rules; None when the rule names a host (resolved elsewhere)."""
        if self.match == "*":
            return True
        try:
            net = ipaddress.ip_network(self.match, strict=False)
        except ValueError:
            return None
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        if ip.version != net.version and isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return ip in net


@dataclass(slots=True)
class ExportConfig:
    path: Path
    pseudo: str
    sec: list[str] = field(default_factory=lambda: ["krb5p", "krb5i", "krb5"])
    clients: list[ClientRule] = field(default_factory=lambda: [ClientRule()])
    allow_devices: bool = False

    @property
    def needs_kerberos(self) -> bool:
        return any(f in KERBEROS_FLAVORS for f in self.sec)


@dataclass(slots=True)
class Config:
    source: str = "<defaults>"
    server: ServerConfig = field(default_factory=ServerConfig)
    kerberos: KerberosConfig = field(default_factory=KerberosConfig)
    preflight: PreflightConfig = field(default_factory=PreflightConfig)
    exports: list[ExportConfig] = field(default_factory=list)
    #: [recovery]: where client records live and the cluster settings (securenfs.recovery).
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    #: The raw [idmap] table, parsed by the idmap package (idmap.config).
    idmap_raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def uses_kerberos(self) -> bool:
        return any(e.needs_kerberos for e in self.exports)

    def acceptor_principals(self) -> list[str]:
        return self.kerberos.principals or [f"nfs/{self.server.hostname}"]


# -- parsing ---------------------------------------------------------------------------------


class _Reader:
    """Typed access to one TOML table, collecting unknown keys."""

    def __init__(self, source: str, prefix: str, table: Any):
        self.source, self.prefix = source, prefix
        if not isinstance(table, dict):
            raise ConfigError(source, prefix, f"must be a table, not {type(table).__name__}",
                              f"write it as [{prefix}]")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def err(self, name: str, message: str, fix: str = "") -> ConfigError:
        return ConfigError(self.source, self.key(name), message, fix)

    def get(self, name: str, typ: type | tuple[type, ...], default: Any, fix: str = "") -> Any:
        self.used.add(name)
        if name not in self.table:
            return default
        v = self.table[name]
        if isinstance(v, bool) and typ in (int, float):
            raise self.err(name, f"expected a number, got {v!r}", fix)
        if typ is float and isinstance(v, int):
            v = float(v)
        if not isinstance(v, typ):
            tname = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise self.err(name, f"expected {tname}, got {type(v).__name__} {v!r}", fix)
        return v

    def str_list(self, name: str, default: list[str], fix: str = "") -> list[str]:
        v = self.get(name, (list, str), default, fix)
        if isinstance(v, str):
            v = [v]
        for item in v:
            if not isinstance(item, str):
                raise self.err(name, f"expected a list of strings, got {item!r}", fix)
        return list(v)

    def positive_int(self, name: str, default: int, lo: int = 1, hi: int = 2**31 - 1) -> int:
        v = int(self.get(name, int, default))
        if not lo <= v <= hi:
            raise self.err(name, f"{v} is out of range", f"use a value between {lo} and {hi}")
        return v

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.err(unknown[0], "unknown key", "remove it or check the spelling (see docs/configuration.md)")


def parse_listen(text: str, source: str = "<command line>", key: str = "server.listen") -> ListenAddress:
    fix = 'write "HOST:PORT", for example "0.0.0.0:2049" or "[::1]:2049"'
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ConfigError(source, key, f"bad address {text!r}", fix)
        port_s = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_s = text.split(":")
    elif ":" in text:
        host, port_s = text, ""
    else:
        # a bare port or a bare host
        if text.isdigit():
            host, port_s = "0.0.0.0", text
        else:
            host, port_s = text, ""
    port = 2049
    if port_s:
        if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
            raise ConfigError(source, key, f"bad port in {text!r}", fix)
        port = int(port_s)
    if not host:
        raise ConfigError(source, key, f"missing host in {text!r}", fix)
    return ListenAddress(host, port)


def _parse_flavors(values: list[str], source: str, key: str) -> list[str]:
    out: list[str] = []
    for f in values:
        f = f.strip().lower()
        if f not in FLAVORS:
            raise ConfigError(source, key, f"unknown security flavor {f!r}", "use krb5p, krb5i, krb5 or sys")
        if f in out:
            raise ConfigError(source, key, f"flavor {f!r} is listed twice", "list each flavor once")
        out.append(f)
    if not out:
        raise ConfigError(source, key, "no security flavor given", 'for example sec = ["krb5p", "krb5i"]')
    return out


def _parse_pseudo(p: str, source: str, key: str) -> str:
    if not p.startswith("/"):
        raise ConfigError(source, key, f"pseudo path {p!r} must be absolute", 'for example pseudo = "/share"')
    parts = [c for c in p.split("/") if c]
    for c in parts:
        if c in (".", ".."):
            raise ConfigError(source, key, f"pseudo path {p!r} contains {c!r}", "use a plain path")
    return "/" + "/".join(parts)


def _parse_client_rule(source: str, prefix: str, t: Any) -> ClientRule:
    r = _Reader(source, prefix, t)
    rule = ClientRule(
        match=r.get("match", str, "*"),
        access=r.get("access", str, "rw"),
        squash=r.get("squash", str, "root"),
        anonuid=r.positive_int("anonuid", 65534, 0, 2**32 - 2),
        anongid=r.positive_int("anongid", 65534, 0, 2**32 - 2),
    )
    if rule.access not in ("rw", "ro"):
        raise r.err("access", f"{rule.access!r} is not an access mode", 'use "rw" or "ro"')
    if rule.squash not in ("none", "root", "all"):
        raise r.err("squash", f"{rule.squash!r} is not a squash mode", 'use "none", "root" or "all"')
    if rule.match != "*" and rule.matches_address("127.0.0.1") is None:
        if not all(c.isalnum() or c in "-._*" for c in rule.match):
            raise r.err("match", f"{rule.match!r} is neither a CIDR network nor a host name",
                        'use "10.0.0.0/8", "client.example.com" or "*"')
    r.finish()
    return rule


def _parse_export(source: str, i: int, t: Any) -> ExportConfig:
    r = _Reader(source, f"exports[{i}]", t)
    path_s = r.get("path", str, None, 'path = "/srv/share"')
    if path_s is None:
        raise r.err("path", "missing", 'add path = "/srv/share"')
    path = Path(path_s)
    if not path.is_absolute():
        raise r.err("path", f"{path_s!r} is not absolute", "use an absolute directory path")
    pseudo = _parse_pseudo(r.get("pseudo", str, path_s), source, r.key("pseudo"))
    sec = _parse_flavors(r.str_list("sec", ["krb5p", "krb5i", "krb5"]), source, r.key("sec"))
    clients_t = r.get("clients", list, None)
    clients = [ClientRule()] if clients_t is None else [
        _parse_client_rule(source, f"{r.key('clients')}[{j}]", c) for j, c in enumerate(clients_t)
    ]
    exp = ExportConfig(path, pseudo, sec, clients, bool(r.get("allow_devices", bool, False)))
    r.finish()
    return exp


def parse(data: dict[str, Any], source: str = "<config>") -> Config:
    cfg = Config(source=source)
    top = _Reader(source, "", data)

    s = _Reader(source, "server", top.get("server", dict, {}))
    sc = cfg.server
    listen = s.str_list("listen", ["0.0.0.0:2049"])
    sc.listen = [parse_listen(x, source, "server.listen") for x in listen]
    sc.state_dir = Path(s.get("state_dir", str, str(sc.state_dir)))
    sc.server_owner = s.get("server_owner", str, None)
    sc.server_scope = s.get("server_scope", str, None)
    sc.hostname = s.get("hostname", str, "") or socket.getfqdn()
    sc.lease_time = s.positive_int("lease_time", 90, 5, 3600)
    sc.grace_time = s.positive_int("grace_time", sc.lease_time, 5, 3600)
    sc.max_record_size = s.positive_int("max_record_size", sc.max_record_size, 65536, 64 * 1024 * 1024)
    sc.threads = s.positive_int("threads", sc.threads, 1, 512)
    sc.inline_metadata = bool(s.get("inline_metadata", bool, True))
    sc.kernel_locks = bool(s.get("kernel_locks", bool, True))
    sc.max_lock_files = s.positive_int("max_lock_files", sc.max_lock_files, 1, 1_000_000)
    sc.max_lock_ranges = s.positive_int("max_lock_ranges", sc.max_lock_ranges, 8, 10_000_000)
    adm = s.get("admin_socket", str, None)
    sc.admin_socket = Path(adm) if adm else None
    s.finish()

    k = _Reader(source, "kerberos", top.get("kerberos", dict, {}))
    kc = cfg.kerberos
    kc.keytab = Path(k.get("keytab", str, str(kc.keytab)))
    kc.principals = k.str_list("principals", [])
    conf = k.get("krb5_conf", str, None)
    kc.krb5_conf = Path(conf) if conf else None
    kc.max_contexts = k.positive_int("max_contexts", kc.max_contexts)
    kc.max_contexts_per_peer = k.positive_int("max_contexts_per_peer", kc.max_contexts_per_peer)
    kc.context_idle_timeout = k.positive_int("context_idle_timeout", kc.context_idle_timeout, 10, 86400 * 7)
    kc.seq_window = k.positive_int("seq_window", kc.seq_window, 32, 4096)
    kc.fast_path = bool(k.get("fast_path", bool, True))
    k.finish()

    p = _Reader(source, "preflight", top.get("preflight", dict, {}))
    pc = cfg.preflight
    pc.ntp_servers = p.str_list("ntp_servers", [])
    pc.dns_servers = p.str_list("dns_servers", [])
    pc.hosts_file = Path(p.get("hosts_file", str, "/etc/hosts"))
    pc.timeout = float(p.get("timeout", float, 10.0))
    if not 0 < pc.timeout <= 300:
        raise p.err("timeout", f"{pc.timeout} is out of range", "use a number of seconds between 0 and 300")
    pc.probe_user = p.get("probe_user", str, None)
    pc.enabled = bool(p.get("enabled", bool, True))
    pc.strict = bool(p.get("strict", bool, False))
    p.finish()

    cfg.recovery = _parse_recovery(top.get("recovery", dict, {}), source)

    cfg.idmap_raw = dict(top.get("idmap", dict, {}))
    if cfg.idmap_raw:
        _check_idmap(cfg.idmap_raw, source)
    exports = top.get("exports", list, [])
    cfg.exports = [_parse_export(source, i, e) for i, e in enumerate(exports)]
    top.finish()
    validate(cfg)
    return cfg


def _parse_recovery(table: dict[str, Any], source: str) -> RecoverySettings:
    """The [recovery] table, read by the recovery package's own parser (one definition)."""
    try:
        return settings_from_mapping(table)
    except RecoveryConfigError as exc:
        # The recovery package words its errors "recovery.<key> ...: <fix>".
        text = str(exc)
        key, _, rest = text.partition(" ")
        if not key.startswith("recovery."):
            raise ConfigError(source, "recovery", text) from None
        key = key.rstrip(":")
        if rest.startswith("= "):
            value, _, fix = rest[2:].partition(": ")
            raise ConfigError(source, key, f"{value} is not valid", fix) from None
        if rest.startswith("unknown key"):
            raise ConfigError(source, key, rest, "remove it or correct its spelling") from None
        message, _, fix = rest.partition(": ")
        raise ConfigError(source, key, message, fix) from None


def _check_idmap(table: dict[str, Any], source: str) -> None:
    """Validate the [idmap] table with the idmap package's own parser (one definition)."""
    from idmap.config import IdmapConfig, IdmapConfigError

    try:
        IdmapConfig.from_mapping(dict(table))
    except IdmapConfigError as exc:
        raise ConfigError(source, exc.key, exc.message, exc.fix) from None


def validate(cfg: Config) -> None:
    """Cross-field checks; fills ``cfg.warnings``."""
    src = cfg.source
    seen: dict[str, int] = {}
    for i, e in enumerate(cfg.exports):
        if e.pseudo == "/":
            pass
        if e.pseudo in seen:
            raise ConfigError(src, f"exports[{i}].pseudo", f"{e.pseudo!r} is already used by exports[{seen[e.pseudo]}]",
                              "give every export its own pseudo path")
        seen[e.pseudo] = i
    for i, e in enumerate(cfg.exports):
        for j, f in enumerate(cfg.exports):
            if i != j and f.pseudo != "/" and e.pseudo.startswith(f.pseudo.rstrip("/") + "/"):
                raise ConfigError(src, f"exports[{i}].pseudo",
                                  f"{e.pseudo!r} lies inside the export {f.pseudo!r}",
                                  "exports cannot be nested in the pseudo file system; choose sibling paths")
    cfg.warnings.clear()
    if cfg.server.lease_time < MIN_SAFE_LEASE:
        cfg.warnings.append(
            f"server.lease_time is {cfg.server.lease_time} s: below {MIN_SAFE_LEASE} s clients may lose "
            "state on a short network hiccup or failover; 90 s is the usual value")
    if cfg.server.grace_time < MIN_SAFE_LEASE:
        cfg.warnings.append(
            f"server.grace_time is {cfg.server.grace_time} s: below {MIN_SAFE_LEASE} s clients may not manage "
            "to reclaim their state after a restart")
    if cfg.server.grace_time < cfg.server.lease_time:
        cfg.warnings.append("server.grace_time is shorter than server.lease_time; RFC 8881 §8.4.2 expects "
                            "the grace period to last at least one lease period")
    if cfg.uses_kerberos and any("sys" in e.sec for e in cfg.exports):
        cfg.warnings.append("an export allows sec=sys on a Kerberos server: AUTH_SYS trusts the uid the "
                            "client asserts")


def load(path: Path | str | None = None, *, required: bool = True) -> Config:
    """Load and validate a config file; a missing default file gives the defaults when not required."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(str(p), "-", "file not found",
                              "create it (see docs/configuration.md) or pass --config PATH") from None
        cfg = parse({}, source="<defaults>")
        return cfg
    except OSError as exc:
        raise ConfigError(str(p), "-", f"cannot read: {exc.strerror}", "check the path and permissions") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(p), "-", "not UTF-8 text", "save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "-", f"TOML syntax error: {exc}", "fix the syntax at the position shown") from None
    return parse(data, source=str(p))


load_config = load


def parse_export_option(text: str) -> ExportConfig:
    """``/srv/share:/share:sec=krb5p,krb5i,sys[:ro]`` from the command line."""
    src, key = "<command line>", "--export"
    fix = "write PATH:PSEUDO[:sec=FLAVOR,...][:ro|rw], e.g. /srv/share:/share:sec=krb5p,sys:rw"
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ConfigError(src, key, f"bad export {text!r}", fix)
    path = Path(parts[0])
    if not path.is_absolute():
        raise ConfigError(src, key, f"export path {parts[0]!r} is not absolute", fix)
    pseudo = _parse_pseudo(parts[1], src, key)
    sec = ["krb5p", "krb5i", "krb5"]
    access = "rw"
    squash = "root"
    for opt in parts[2:]:
        if opt.startswith("sec="):
            sec = _parse_flavors(opt[4:].split(","), src, key)
        elif opt in ("ro", "rw"):
            access = opt
        elif opt in ("no_root_squash", "root_squash", "all_squash"):
            squash = {"no_root_squash": "none", "root_squash": "root", "all_squash": "all"}[opt]
        else:
            raise ConfigError(src, key, f"unknown export option {opt!r}", fix)
    return ExportConfig(path, pseudo, sec, [ClientRule(access=access, squash=squash)])


def apply_overrides(
    cfg: Config,
    *,
    listen: list[str] | None = None,
    state_dir: str | None = None,
    keytab: str | None = None,
    exports: list[str] | None = None,
    hostname: str | None = None,
) -> Config:
    if listen:
        cfg.server.listen = [parse_listen(x, "<command line>", "--listen") for x in listen]
    if state_dir:
        cfg.server.state_dir = Path(state_dir)
    if keytab:
        cfg.kerberos.keytab = Path(keytab)
    if hostname:
        cfg.server.hostname = hostname
    if exports:
        cfg.exports = [parse_export_option(x) for x in exports]
    validate(cfg)
    return cfg


# -- output ----------------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, Path):
        v = str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def dump(cfg: Config) -> str:
    """The effective configuration as TOML (defaults filled in)."""
    out = [f"# effective configuration (from {cfg.source})", "", "[server]"]
    sc = cfg.server
    out.append(f"listen = {_toml_value([str(a) for a in sc.listen])}")
    for name in ("state_dir", "server_owner", "server_scope", "hostname", "lease_time", "grace_time",
                 "max_record_size", "threads", "inline_metadata", "kernel_locks",
                 "max_lock_files", "max_lock_ranges", "admin_socket"):
        v = getattr(sc, name)
        if v is None:
            out.append(f"# {name} = (not set)")
        else:
            out.append(f"{name} = {_toml_value(v)}")
    out += ["", "[kerberos]"]
    kc = cfg.kerberos
    out.append(f"keytab = {_toml_value(kc.keytab)}")
    out.append(f"principals = {_toml_value(cfg.acceptor_principals())}")
    for name in ("krb5_conf", "max_contexts", "max_contexts_per_peer", "context_idle_timeout", "seq_window",
                 "fast_path"):
        v = getattr(kc, name)
        out.append(f"# {name} = (not set)" if v is None else f"{name} = {_toml_value(v)}")
    out += ["", "[preflight]"]
    pc = cfg.preflight
    for name in ("enabled", "strict", "ntp_servers", "dns_servers", "hosts_file", "timeout", "probe_user"):
        v = getattr(pc, name)
        out.append(f"# {name} = (not set)" if v is None else f"{name} = {_toml_value(v)}")
    out += ["", "[recovery]"]
    rc = cfg.recovery
    out.append(f"backend = {_toml_value(rc.backend)}")
    if rc.backend == "etcd" or rc.node_id or rc.etcd_endpoints:
        out.append(f"node_id = {_toml_value(rc.node_id)}" if rc.node_id else "# node_id = (not set)")
        out.append(f"etcd_endpoints = {_toml_value(rc.etcd_endpoints)}")
    for name in ("etcd_prefix", "member_ttl", "etcd_timeout"):
        out.append(f"{name} = {_toml_value(getattr(rc, name))}")
    if cfg.idmap_raw:
        out += ["", "[idmap]"]
        for k2, v in cfg.idmap_raw.items():
            if not isinstance(v, dict):
                out.append(f"{k2} = {_toml_value(v)}")
        for k2, v in cfg.idmap_raw.items():
            if isinstance(v, dict):
                out += ["", f"[idmap.{k2}]"] + [f"{a} = {_toml_value(b)}" for a, b in v.items() if not isinstance(b, dict)]
    for e in cfg.exports:
        out += ["", "[[exports]]", f"path = {_toml_value(e.path)}", f"pseudo = {_toml_value(e.pseudo)}",
                f"sec = {_toml_value(e.sec)}"]
        if e.allow_devices:
            out.append("allow_devices = true")
        for r in e.clients:
            out += ["[[exports.clients]]", f"match = {_toml_value(r.match)}", f"access = {_toml_value(r.access)}",
                    f"squash = {_toml_value(r.squash)}", f"anonuid = {r.anonuid}", f"anongid = {r.anongid}"]
    for w in cfg.warnings:
        out.append(f"# warning: {w}")
    return "\n".join(out) + "\n"
