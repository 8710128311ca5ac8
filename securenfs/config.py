"""The server configuration: one TOML file parsed into typed, validated objects.

Every error names the file, the key and the fix.  The essentials can also be given on the
command line (``--listen``, ``--state-dir``, ``--keytab``, ``--export``); those override the
file.  ``securenfs check-config`` prints the effective configuration (:func:`dump`).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import re
import socket
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securenfs.recovery.settings import RecoveryConfigError, RecoverySettings, settings_from_mapping
from securenfs.rpc.auth import FLAVORS, KERBEROS_FLAVORS, KERBEROS_SEC
from securenfs.rpc.transport import DEFAULT_MAX_RECORD
from securenfs.rpcsec_gss.constants import DEFAULT_ACCEPTOR_SERVICES

log = logging.getLogger("securenfs.config")

DEFAULT_CONFIG_PATH = Path("/etc/securenfs/securenfs.toml")
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
    max_record_size: int = DEFAULT_MAX_RECORD
    threads: int = 16
    admin_socket: Path | None = None
    #: Run metadata calls (GETATTR's stat, LOOKUP, ACCESS) on the event-loop thread instead
    #: of handing them to a worker thread (2x the GETATTR rate here); turn off when the
    #: exported file systems can be slow to answer a stat (a network or failing disk).
    inline_metadata: bool = True
    #: Client owners kept at most (0: sized for the machine's memory, see
    #: securenfs.state.limits) and sessions per client; past them EXCHANGE_ID and
    #: CREATE_SESSION answer NFS4ERR_DELAY.
    max_clients: int = 0
    max_sessions_per_client: int = 16
    #: Mirror every NFS byte-range lock into the kernel as an OFD lock (docs/locking.md).
    kernel_locks: bool = True
    #: Lock descriptors (one per lock-owner and file with kernel locks) held at most.
    max_lock_files: int = 512
    #: Byte ranges one client may hold locked on all files together.
    max_lock_ranges: int = 10000
    #: Prometheus metrics over HTTP (``/metrics``) on this address; None: off.
    metrics_listen: ListenAddress | None = None
    #: Log lines as text (``text``) or as one JSON object per line (``json``).
    log_format: str = "text"


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
    interval: int = 300  # seconds between runs of the live gate; 0: only on SIGHUP / reload


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
    sec: list[str] = field(default_factory=lambda: list(KERBEROS_SEC))
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
        """The service principals the server accepts tickets for (any realm when not listed)."""
        return self.kerberos.principals or [f"{svc}/{self.server.hostname}" for svc in DEFAULT_ACCEPTOR_SERVICES]


# -- parsing ---------------------------------------------------------------------------------


#: The tables a config file may hold.
TOP_LEVEL_KEYS = ("server", "kerberos", "preflight", "recovery", "idmap", "exports")

#: What a value of each TOML type looks like, for "expected ..." messages.
_FORMS: dict[type, str] = {
    int: "an integer", float: "a number", str: "a string in double quotes", bool: "true or false",
    list: "a list", dict: "a table",
}


def field_names(record: type) -> tuple[str, ...]:
    """The keys of a config table are the fields of the record it fills."""
    return tuple(f.name for f in dataclasses.fields(record))


def _section_keys() -> dict[str, str]:
    """Which table each key belongs to, to name the table of a key written in the wrong one."""
    out: dict[str, str] = {}
    for section, record in (("[server]", ServerConfig), ("[kerberos]", KerberosConfig),
                            ("[preflight]", PreflightConfig), ("[recovery]", RecoverySettings),
                            ("[[exports]]", ExportConfig), ("[[exports.clients]]", ClientRule)):
        for name in field_names(record):
            out.setdefault(name, section)
    return out


def misplaced(name: str, here: str) -> str:
    """The fix for a key that belongs to another table, or "" when it belongs to none."""
    section = _section_keys().get(name)
    table = re.sub(r"\[\d+\]", "", here)
    if section is None or section in (f"[{table}]", f"[[{table}]]"):
        return ""
    return (f"{name} is a key of {section}: a key written below a [table] header belongs to that "
            f"table, so move it into {section}")


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """The fix for an unknown key: the closest known key, else the list of known keys."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean {prefix}{close[0]}?"
    return f"remove it; the known keys are {', '.join(known)} (see docs/configuration.md)"


class _Reader:
    """Typed access to one TOML table.

    With ``known``, keys outside it are reported as soon as the table is opened, so a
    misspelt key is named before any value of the table is judged (a misspelt required key
    would otherwise be reported as missing).
    """

    def __init__(self, source: str, prefix: str, table: Any, known: Iterable[str] | None = None):
        self.source, self.prefix = source, prefix
        if not isinstance(table, dict):
            raise ConfigError(source, prefix, f"must be a table, not {type(table).__name__}",
                              f"write it as [{prefix}]")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()
        self.known = tuple(known or ())
        if self.known:
            for name in table:
                if name not in self.known:
                    raise self.unknown(name)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def err(self, name: str, message: str, fix: str = "") -> ConfigError:
        return ConfigError(self.source, self.key(name), message, fix)

    def unknown(self, name: str) -> ConfigError:
        known = set(self.known) | self.used
        return self.err(name, "unknown key", misplaced(name, self.prefix) or did_you_mean(name, known, self.key("")))

    def get(self, name: str, typ: type | tuple[type, ...], default: Any, fix: str = "", form: str = "") -> Any:
        self.used.add(name)
        if name not in self.table:
            return default
        v = self.table[name]
        types = typ if isinstance(typ, tuple) else (typ,)
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            expected = form or " or ".join(_FORMS.get(t, t.__name__) for t in types)
            example = default if isinstance(default, (int, float, str)) else None
            fix = fix or (f"write {name} = {_toml_value(example)}" if example is not None
                          else f"write {name} as {expected}")
            raise self.err(name, f"expected {expected}, got {_toml_value(v)}", fix)
        return v

    def str_list(self, name: str, default: list[str], fix: str = "") -> list[str]:
        v = self.get(name, (list, str), default, fix, form="a list of strings")
        if isinstance(v, str):
            v = [v]
        for item in v:
            if not isinstance(item, str):
                raise self.err(name, f"expected a list of strings, got {item!r}",
                               fix or f'write {name} = ["...", "..."]')
        return list(v)

    def positive_int(self, name: str, default: int, lo: int = 1, hi: int = 2**31 - 1, unit: str = "") -> int:
        form = f"an integer number of {unit}, e.g. {default}" if unit else f"an integer, e.g. {default}"
        v = int(self.get(name, int, default, form=form))
        if not lo <= v <= hi:
            raise self.err(name, f"{v} is out of range", f"use a value between {lo} and {hi}")
        return v

    def finish(self) -> None:
        for name in sorted(set(self.table) - self.used):
            raise self.unknown(name)


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
    r = _Reader(source, prefix, t, field_names(ClientRule))
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
    r = _Reader(source, f"exports[{i}]", t, field_names(ExportConfig))
    path_s = r.get("path", str, None, 'path = "/srv/share"')
    if path_s is None:
        raise r.err("path", "missing", 'add path = "/srv/share"')
    path = Path(path_s)
    if not path.is_absolute():
        raise r.err("path", f"{path_s!r} is not absolute", "use an absolute directory path")
    pseudo = _parse_pseudo(r.get("pseudo", str, path_s), source, r.key("pseudo"))
    sec = _parse_flavors(r.str_list("sec", list(KERBEROS_SEC)), source, r.key("sec"))
    clients_t = r.get("clients", list, None, "write each client rule as an [[exports.clients]] table")
    clients = [ClientRule()] if clients_t is None else [
        _parse_client_rule(source, f"{r.key('clients')}[{j}]", c) for j, c in enumerate(clients_t)
    ]
    exp = ExportConfig(path, pseudo, sec, clients, bool(r.get("allow_devices", bool, False)))
    r.finish()
    return exp


def parse(data: dict[str, Any], source: str = "<config>") -> Config:
    cfg = Config(source=source)
    top = _Reader(source, "", data, TOP_LEVEL_KEYS)

    s = _Reader(source, "server", top.get("server", dict, {}), field_names(ServerConfig))
    sc = cfg.server
    listen = s.str_list("listen", ["0.0.0.0:2049"])
    sc.listen = [parse_listen(x, source, "server.listen") for x in listen]
    sc.state_dir = Path(s.get("state_dir", str, str(sc.state_dir)))
    sc.server_owner = s.get("server_owner", str, None)
    sc.server_scope = s.get("server_scope", str, None)
    sc.hostname = s.get("hostname", str, "") or socket.getfqdn()
    sc.lease_time = s.positive_int("lease_time", 90, 5, 3600, unit="seconds")
    sc.grace_time = s.positive_int("grace_time", sc.lease_time, 5, 3600, unit="seconds")
    sc.max_record_size = s.positive_int("max_record_size", sc.max_record_size, 65536, 64 * 1024 * 1024, unit="bytes")
    sc.threads = s.positive_int("threads", sc.threads, 1, 512)
    sc.inline_metadata = bool(s.get("inline_metadata", bool, True))
    sc.max_clients = s.positive_int("max_clients", 0, 0, 10_000_000)
    sc.max_sessions_per_client = s.positive_int("max_sessions_per_client", sc.max_sessions_per_client, 1, 1024)
    sc.kernel_locks = bool(s.get("kernel_locks", bool, True))
    sc.max_lock_files = s.positive_int("max_lock_files", sc.max_lock_files, 1, 1_000_000)
    sc.max_lock_ranges = s.positive_int("max_lock_ranges", sc.max_lock_ranges, 8, 10_000_000)
    adm = s.get("admin_socket", str, None)
    sc.admin_socket = Path(adm) if adm else None
    ml = s.get("metrics_listen", str, None, form='"HOST:PORT", e.g. "127.0.0.1:9749"')
    sc.metrics_listen = parse_listen(ml, source, "server.metrics_listen") if ml else None
    sc.log_format = s.get("log_format", str, "text")
    if sc.log_format not in ("text", "json"):
        raise s.err("log_format", f"unknown format {sc.log_format!r}", 'write log_format = "text" or "json"')
    s.finish()

    k = _Reader(source, "kerberos", top.get("kerberos", dict, {}), field_names(KerberosConfig))
    kc = cfg.kerberos
    kc.keytab = Path(k.get("keytab", str, str(kc.keytab)))
    kc.principals = k.str_list("principals", [])
    conf = k.get("krb5_conf", str, None)
    kc.krb5_conf = Path(conf) if conf else None
    kc.max_contexts = k.positive_int("max_contexts", kc.max_contexts)
    kc.max_contexts_per_peer = k.positive_int("max_contexts_per_peer", kc.max_contexts_per_peer)
    kc.context_idle_timeout = k.positive_int("context_idle_timeout", kc.context_idle_timeout, 10, 86400 * 7,
                                             unit="seconds")
    kc.seq_window = k.positive_int("seq_window", kc.seq_window, 32, 4096)
    kc.fast_path = bool(k.get("fast_path", bool, True))
    k.finish()

    p = _Reader(source, "preflight", top.get("preflight", dict, {}), field_names(PreflightConfig))
    pc = cfg.preflight
    pc.ntp_servers = p.str_list("ntp_servers", [])
    pc.dns_servers = p.str_list("dns_servers", [])
    pc.hosts_file = Path(p.get("hosts_file", str, "/etc/hosts"))
    pc.timeout = float(p.get("timeout", float, 10.0, form="a number of seconds, e.g. 10"))
    if not 0 < pc.timeout <= 300:
        raise p.err("timeout", f"{pc.timeout} is out of range", "use a number of seconds between 0 and 300")
    pc.probe_user = p.get("probe_user", str, None)
    pc.enabled = bool(p.get("enabled", bool, True))
    pc.strict = bool(p.get("strict", bool, False))
    pc.interval = p.positive_int("interval", pc.interval, 0, 86400)
    p.finish()

    cfg.recovery = _parse_recovery(top.get("recovery", dict, {}), source)

    cfg.idmap_raw = dict(top.get("idmap", dict, {}))
    if cfg.idmap_raw:
        _check_idmap(cfg.idmap_raw, source)
    exports = top.get("exports", list, [], "write each export as an [[exports]] table (double brackets)")
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
            fix = rest.partition("(")[2].rstrip(")") or "remove it or correct its spelling"
            raise ConfigError(source, key, "unknown key", fix) from None
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
        document = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(p), "-", "not UTF-8 text", "save the file as UTF-8") from None
    try:
        data = tomllib.loads(document)
    except tomllib.TOMLDecodeError as exc:
        raise toml_syntax_error(str(p), document, exc) from None
    return parse(data, source=str(p))


load_config = load

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$|\s*\(at end of document\)\s*$")


def toml_syntax_error(source: str, document: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """A TOML syntax error as ``FILE: line N, column M: what is wrong``."""
    text = str(exc)
    m = _TOML_POSITION.search(text)
    where = f"line {max(1, len(document.splitlines()))} (end of file)"
    if m is not None:
        text = text[: m.start()]
        if m.group(1):
            where = f"line {m.group(1)}, column {m.group(2)}"
    return ConfigError(source, where, f"TOML syntax error: {text}",
                       "correct the syntax there (see docs/configuration.md for the form of each table)")


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
    if not path.exists() and Path(pseudo).is_dir():
        # The old preflight form was PSEUDO:PATH: never serve or judge a swapped export.
        raise ConfigError(src, key, f"export path {parts[0]!r} does not exist, but the pseudo path "
                          f"{parts[1]!r} is a directory here", "the form is PATH:PSEUDO, the local "
                          f"directory first: --export {parts[1]}:{parts[0]}" + "".join(f":{o}" for o in parts[2:]))
    sec = list(KERBEROS_SEC)
    access = "rw"
    squash = "root"
    for opt in parts[2:]:
        if opt.startswith("sec="):
            sec = _parse_flavors(opt[4:].split(","), src, key)
        elif opt in ("ro", "rw"):
            access = opt
        elif opt in ("no_root_squash", "root_squash", "all_squash"):
            squash = {"no_root_squash": "none", "root_squash": "root", "all_squash": "all"}[opt]
        elif opt and all(f.strip().lower() in FLAVORS for f in opt.split(",")):
            raise ConfigError(src, key, f"export option {opt!r} lacks sec=", f"write sec={opt}")
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
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def _dump_table(out: list[str], name: str, table: dict[str, Any]) -> None:
    """``[name]`` with its plain keys, then its sub-tables; None is shown as not set."""
    out += ["", f"[{name}]"]
    for k, v in table.items():
        if v is None:
            out.append(f"# {k} = (not set)")
        elif not isinstance(v, dict):
            out.append(f"{k} = {_toml_value(v)}")
    for k, v in table.items():
        if isinstance(v, dict):
            _dump_table(out, f"{name}.{k}", v)


def dump(cfg: Config) -> str:
    """The effective configuration as TOML, every default filled in.

    Parsing the output again gives the same configuration; what cannot be written as a
    value (principals chosen by default, an unset [idmap]) is explained in comments.
    """
    out = [f"# effective configuration (from {cfg.source})", "", "[server]"]
    sc = cfg.server
    # What an unset key amounts to, where it is not simply nothing.
    unset = {
        "server_owner": f"a random identity created once and kept in {sc.state_dir}",
        "server_scope": "the same as server_owner",
        "admin_socket": str(sc.state_dir / "admin.sock"),
        "metrics_listen": "no metrics endpoint",
        "krb5_conf": "$KRB5_CONFIG, else /etc/krb5.conf",
    }
    out.append(f"listen = {_toml_value([str(a) for a in sc.listen])}")
    for name in ("state_dir", "server_owner", "server_scope", "hostname", "lease_time", "grace_time",
                 "max_record_size", "threads", "inline_metadata", "kernel_locks", "max_lock_files",
                 "max_lock_ranges", "admin_socket", "max_clients", "max_sessions_per_client", "metrics_listen",
                 "log_format"):
        v = getattr(sc, name)
        if v is None:
            out.append(f"# {name} = (not set: {unset[name]})")
        else:
            out.append(f"{name} = {_toml_value(v)}")
    out += ["", "[kerberos]"]
    kc = cfg.kerberos
    out.append(f"keytab = {_toml_value(kc.keytab)}")
    if kc.principals:
        out.append(f"principals = {_toml_value(kc.principals)}")
    else:
        out.append(f"# principals not set: tickets for {' and '.join(cfg.acceptor_principals())} of any realm "
                   "are accepted; the keytab must hold at least one of them")
    for name in ("krb5_conf", "max_contexts", "max_contexts_per_peer", "context_idle_timeout", "seq_window",
                 "fast_path"):
        v = getattr(kc, name)
        out.append(f"# {name} = (not set: {unset[name]})" if v is None else f"{name} = {_toml_value(v)}")
    out += ["", "[preflight]"]
    pc = cfg.preflight
    for f in dataclasses.fields(pc):
        v = getattr(pc, f.name)
        out.append(f"# {f.name} = (not set)" if v is None else f"{f.name} = {_toml_value(v)}")
    out += ["", "[recovery]"]
    rc = cfg.recovery
    for f in dataclasses.fields(rc):
        v = getattr(rc, f.name)
        out.append(f"# {f.name} = (not set)" if v is None else f"{f.name} = {_toml_value(v)}")
    if cfg.idmap_raw:
        from idmap.config import IdmapConfig, effective_table

        table = effective_table(IdmapConfig.from_mapping(dict(cfg.idmap_raw)))
        ldap = table.get("ldap")
        secret = isinstance(ldap, dict) and ldap.pop("bind_password_set", False)
        _dump_table(out, "idmap", table)
        if secret:
            out.append("# idmap.ldap: the bind password is set (not shown)")
    else:
        out += ["", "# [idmap] not set: owners and groups are sent and accepted as numeric ids",
                "# (RFC 8881 §5.9); add an [idmap] table to map user@domain names (docs/idmap.md)"]
    for e in cfg.exports:
        out += ["", "[[exports]]", f"path = {_toml_value(e.path)}", f"pseudo = {_toml_value(e.pseudo)}",
                f"sec = {_toml_value(e.sec)}", f"allow_devices = {_toml_value(e.allow_devices)}"]
        for r in e.clients:
            out += ["[[exports.clients]]", f"match = {_toml_value(r.match)}", f"access = {_toml_value(r.access)}",
                    f"squash = {_toml_value(r.squash)}", f"anonuid = {r.anonuid}", f"anongid = {r.anongid}"]
    for w in cfg.warnings:
        out.append(f"# warning: {w}")
    return "\n".join(out) + "\n"
