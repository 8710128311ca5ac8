"""Configuration of the ID mapper: the ``[idmap]`` table of the server's TOML file.

:meth:`IdmapConfig.from_mapping` checks every key and value and raises
:class:`IdmapConfigError` naming the dotted key, what is wrong and how to fix it.
Unknown keys are errors too (a misspelt key silently ignored is how idmap setups end up
at nobody:nobody).  docs/idmap.md is the reference for every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import socket
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.Enum)

NOBODY_ID = 65534


class IdmapConfigError(ValueError):
    """Invalid ``[idmap]`` configuration.

    ``key`` is the dotted path (``idmap.ldap.uris``), ``message`` what is wrong and
    ``fix`` what to change.
    """

    def __init__(self, key: str, message: str, fix: str) -> None:
        super().__init__(f"{key}: {message} (fix: {fix})")
        self.key = key
        self.message = message
        self.fix = fix


class BackendKind(enum.Enum):
    LDAP = "ldap"
    STATIC = "static"
    NSS = "nss"


class SchemaProfile(enum.Enum):
    RFC2307 = "rfc2307"
    RFC2307BIS = "rfc2307bis"
    AD = "ad"


class Nesting(enum.Enum):
    NONE = "none"  # only direct memberships
    CLIENT = "client"  # walk parent groups here, bounded by nesting_level, cycle-safe
    IN_CHAIN = "in-chain"  # AD: LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941) server-side


class TlsMode(enum.Enum):
    NONE = "none"
    STARTTLS = "starttls"
    LDAPS = "ldaps"


class BindMethod(enum.Enum):
    ANONYMOUS = "anonymous"
    SIMPLE = "simple"
    SASL_GSSAPI = "sasl-gssapi"


class PrincipalLookup(enum.Enum):
    ATTRIBUTE = "attribute"  # only the principal attribute (krbPrincipalName, userPrincipalName)
    SHORTNAME = "shortname"  # only the name part, for principals of a local realm
    BOTH = "both"  # attribute first, then the short name


class MachinePolicy(enum.Enum):
    ANON = "anon"  # the anonymous uid/gid (default)
    ID = "id"  # a configured uid/gid (e.g. a service account allowed to hold state)
    LOOKUP = "lookup"  # look the principal up like a user (AD computer accounts with uidNumber)
    ROOT = "root"  # uid 0; must be chosen explicitly and is logged as a warning
    REJECT = "reject"  # refuse: the request fails


class UnmappedPolicy(enum.Enum):
    ANON = "anon"  # map to the anonymous id, with a log line naming the string and the reason
    REJECT = "reject"  # refuse (NFS4ERR_BADOWNER for owner strings, an error for principals)


@dataclass(slots=True)
class LdapAttributes:
    """Object classes and attribute names; defaults come from the schema profile."""

    user_object_class: str
    user_name: str
    uid_number: str
    gid_number: str
    principal: str
    group_object_class: str
    group_name: str
    group_gid_number: str
    member: str
    member_is_dn: bool


PROFILE_DEFAULTS: dict[SchemaProfile, LdapAttributes] = {
    SchemaProfile.RFC2307: LdapAttributes(
        "posixAccount", "uid", "uidNumber", "gidNumber", "krbPrincipalName",
        "posixGroup", "cn", "gidNumber", "memberUid", False,
    ),
    SchemaProfile.RFC2307BIS: LdapAttributes(
        "posixAccount", "uid", "uidNumber", "gidNumber", "krbPrincipalName",
        "posixGroup", "cn", "gidNumber", "member", True,
    ),
    SchemaProfile.AD: LdapAttributes(
        "user", "sAMAccountName", "uidNumber", "gidNumber", "userPrincipalName",
        "group", "cn", "gidNumber", "member", True,
    ),
}

PROFILE_NESTING: dict[SchemaProfile, Nesting] = {
    SchemaProfile.RFC2307: Nesting.NONE,
    SchemaProfile.RFC2307BIS: Nesting.CLIENT,
    SchemaProfile.AD: Nesting.IN_CHAIN,
}


@dataclass(slots=True)
class LdapConfig:
    uris: list[str]
    base: str
    user_base: str
    group_base: str
    schema: SchemaProfile = SchemaProfile.RFC2307
    attributes: LdapAttributes = field(
        default_factory=lambda: PROFILE_DEFAULTS[SchemaProfile.RFC2307]
    )
    user_filter: str = ""
    group_filter: str = ""
    nesting: Nesting = Nesting.NONE
    nesting_level: int = 2
    principal_lookup: PrincipalLookup = PrincipalLookup.BOTH
    tls: TlsMode = TlsMode.NONE
    ca_file: str | None = None
    tls_require_cert: bool = True
    bind: BindMethod = BindMethod.ANONYMOUS
    bind_dn: str | None = None
    bind_password: str | None = None
    keytab: str = "/etc/krb5.keytab"
    sasl_principal: str | None = None
    timeout: float = 4.0
    reconnect_min: float = 5.0
    reconnect_max: float = 300.0
    size_limit: int = 2000


@dataclass(slots=True)
class StaticConfig:
    path: str


@dataclass(slots=True)
class CacheConfig:
    positive_ttl: float = 600.0
    negative_ttl: float = 60.0
    stale_max: float = 86400.0
    max_entries: int = 100_000
    max_negative: int = 50_000


@dataclass(slots=True)
class NumericConfig:
    """RFC 8881 §5.9 numeric owner strings."""

    accept_from_sys: bool = True  # AUTH_SYS clients may send "1000" (Linux default)
    allow_with_gss: bool = False  # never for Kerberos principals unless explicitly allowed
    emit_unmapped: bool = True  # an id without a name is sent as digits, not "nobody"

    def accept(self, *, kerberos: bool) -> bool:
        """Whether a request of this flavor may use numeric owner strings."""
        return self.allow_with_gss if kerberos else self.accept_from_sys


@dataclass(slots=True)
class MachineConfig:
    policy: MachinePolicy = MachinePolicy.ANON
    uid: int | None = None
    gid: int | None = None
    services: tuple[str, ...] = ("nfs", "host", "root")
    computer_accounts: bool = True  # AD "HOST$@REALM"


@dataclass(slots=True)
class IdmapConfig:
    domain: str
    local_realms: tuple[str, ...]
    backends: tuple[BackendKind, ...] = (BackendKind.NSS,)
    anon_uid: int = NOBODY_ID
    anon_gid: int = NOBODY_ID
    max_groups: int = 1024
    unmapped_principal: UnmappedPolicy = UnmappedPolicy.ANON
    foreign_owner: UnmappedPolicy = UnmappedPolicy.ANON
    outage_delay: float = 30.0
    max_inflight: int = 16
    numeric: NumericConfig = field(default_factory=NumericConfig)
    machine: MachineConfig = field(default_factory=MachineConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    ldap: LdapConfig | None = None
    static: StaticConfig | None = None

    @classmethod
    def from_mapping(cls, mapping: AbcMapping[str, Any], where: str = "idmap") -> IdmapConfig:
        """Build a configuration from the parsed ``[idmap]`` TOML table."""
        return _parse(_Table(mapping, where, IDMAP_KEYS))


# --------------------------------------------------------------------------- parsing


def host_dns_domain() -> str | None:
    """The DNS domain of this host (the FQDN minus its first label), or None."""
    fqdn = socket.getfqdn()
    if "." not in fqdn or fqdn.startswith("localhost"):
        return None
    domain = fqdn.split(".", 1)[1].rstrip(".").lower()
    return domain or None


def krb5_default_realm() -> str | None:
    """default_realm from krb5.conf, or None when it cannot be read."""
    try:
        import krb5  # pykrb5

        ctx = krb5.init_context()
        realm = krb5.get_default_realm(ctx)
        return realm.decode() if isinstance(realm, bytes) else str(realm)
    except Exception:  # noqa: BLE001 - any failure means "not configured"
        return None


class _Table:
    """A TOML table being parsed: typed getters that report the dotted key on error."""

    def __init__(self, data: AbcMapping[str, Any], where: str, known: tuple[str, ...] = ()) -> None:
        if not isinstance(data, AbcMapping):
            raise IdmapConfigError(where, "must be a table", f"write [{where}] as a TOML table")
        self.data = data
        self.where = where
        self.seen: set[str] = set()
        self.known = known
        # A misspelt key is named before any value is judged: a misspelt required key
        # would otherwise be reported as missing.
        for name in data:
            if known and name not in known:
                raise self.unknown(name)

    def unknown(self, name: str) -> IdmapConfigError:
        owner = _table_of(name)
        here = self.where.split(".", 1)[1] if "." in self.where else ""
        if owner is not None and owner != here:
            table = _qualified(self.where, owner)
            # A key written below a sub-table header lands in that sub-table (TOML).
            if not here:
                fix = f"{name} is a key of [{table}]: write it below the [{table}] header"
            else:
                where = f"above the [{self.where}] header" if not owner else f"below the [{table}] header"
                fix = (f"{name} is a key of [{table}]: a key written below a [table] header belongs "
                       f"to that table, so move it {where}")
            return IdmapConfigError(self.key(name), "unknown key", fix)
        candidates = sorted(set(self.known) | self.seen)
        close = difflib.get_close_matches(name, candidates, n=1)
        fix = f"did you mean {self.key(close[0])}?" if close else (
            f"remove it; known keys: {', '.join(candidates)}"
        )
        return IdmapConfigError(self.key(name), "unknown key", fix)

    def key(self, name: str) -> str:
        return f"{self.where}.{name}"

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type[_T] | tuple[type, ...], default: _T, hint: str) -> _T:
        self.seen.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a TOML "true" must not pass as a number.
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        elif float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            ok = True
        else:
            ok = isinstance(value, kinds)
        if not ok:
            raise IdmapConfigError(self.key(name), f"expected {hint}, got {_toml(value)}",
                                   f"set {self.key(name)} to {hint}")
        return cast(_T, value)

    def text(self, name: str, default: _T, *, required: bool = False) -> str | _T:
        if required and name not in self.data:
            raise IdmapConfigError(self.key(name), "is required", f"set {self.key(name)}")
        value = self.get(name, str, default, "a string")
        if isinstance(value, str) and not value.strip():
            raise IdmapConfigError(self.key(name), "must not be empty", f"set {self.key(name)}")
        return cast("str | _T", value)

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.get(name, float, default, f"a number of seconds, e.g. {default:g}")
        if value < minimum:
            raise IdmapConfigError(
                self.key(name), f"must be at least {minimum}, got {value}",
                f"set {self.key(name)} to a value >= {minimum}",
            )
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0,
                maximum: int = 2**32 - 1) -> int:
        value = self.get(name, int, default,
                         f"an integer, e.g. {default}" if default >= minimum else "an integer")
        if not minimum <= value <= maximum:
            raise IdmapConfigError(
                self.key(name), f"must be between {minimum} and {maximum}, got {value}",
                f"set {self.key(name)} to an integer in that range",
            )
        return value

    def flag(self, name: str, default: bool) -> bool:
        return self.get(name, bool, default, "true or false")

    def choice(self, name: str, enum_type: type[_E], default: _E) -> _E:
        value = self.get(name, str, default.value, "a string")
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum_type)
            raise IdmapConfigError(
                self.key(name), f"unknown value {value!r}", f"use one of {allowed}"
            ) from None

    def strings(self, name: str, default: list[str], *, nonempty: bool = False) -> list[str]:
        value = self.get(name, list, default, "a list of strings")
        if not all(isinstance(v, str) and v.strip() for v in value):
            raise IdmapConfigError(
                self.key(name), "every entry must be a non-empty string",
                f'write {self.key(name)} = ["...", "..."]',
            )
        if nonempty and not value:
            raise IdmapConfigError(self.key(name), "must not be empty",
                                   f"list at least one value in {self.key(name)}")
        return list(value)

    def table(self, name: str, known: tuple[str, ...] = ()) -> _Table | None:
        self.seen.add(name)
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, AbcMapping):
            raise IdmapConfigError(self.key(name), "must be a table",
                                   f"write it as [{self.key(name)}]")
        return _Table(value, self.key(name), known)

    def finish(self) -> None:
        """Reject keys nobody asked for: they are misspellings or unsupported options."""
        for name in self.data:
            if name not in self.seen:
                raise self.unknown(name)


def _toml(value: object) -> str:
    """A value as it is written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _fields(record: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record))


def _table_of(name: str) -> str | None:
    """The sub-table a key belongs to ("ldap", "cache" ...; the empty string for [idmap]
    itself), or None when no idmap table has it."""
    if name in IDMAP_KEYS:
        return ""
    for table, keys in (("ldap", LDAP_KEYS), ("machine_principals", MACHINE_KEYS),
                        ("cache", _fields(CacheConfig)), ("numeric", _fields(NumericConfig))):
        if name in keys:
            return table
    return None


def _qualified(where: str, table: str) -> str:
    """The dotted name of ``table`` under the [idmap] table that ``where`` lies in."""
    root = where.split(".", 1)[0]
    return f"{root}.{table}" if table else root


#: The keys of each table; a key outside them is reported before any value is judged.
IDMAP_KEYS = (
    "domain", "local_realms", "backends", "anon_uid", "anon_gid", "max_groups",
    "unmapped_principal", "foreign_owner", "outage_delay", "max_inflight", "numeric",
    "machine_principals", "cache", "ldap", "static",
)
MACHINE_KEYS = ("policy", "uid", "gid", "services", "computer_accounts")
LDAP_KEYS = (*(f for f in _fields(LdapConfig)), "bind_password_file")


def _parse(t: _Table) -> IdmapConfig:
    domain = t.text("domain", None)
    if domain is None:
        domain = host_dns_domain()
        if domain is None:
            raise IdmapConfigError(
                t.key("domain"),
                "not set and this host's name has no DNS domain to default to",
                f'set {t.key("domain")} = "example.com" (the same Domain as the clients\' '
                "idmapd.conf)",
            )
    domain = domain.strip().rstrip(".").lower()
    if "@" in domain or " " in domain:
        raise IdmapConfigError(t.key("domain"), f"{domain!r} is not a DNS domain",
                               'write a domain such as "example.com"')

    realms = t.strings("local_realms", [])
    if not realms:
        default_realm = krb5_default_realm()
        realms = [default_realm] if default_realm else [domain.upper()]

    names = t.strings("backends", ["nss"], nonempty=True)
    backends: list[BackendKind] = []
    for i, name in enumerate(names):
        try:
            kind = BackendKind(name)
        except ValueError:
            raise IdmapConfigError(
                f"{t.key('backends')}[{i}]", f"unknown backend {name!r}",
                "use \"ldap\", \"static\" or \"nss\"",
            ) from None
        if kind in backends:
            raise IdmapConfigError(t.key("backends"), f"{name!r} is listed twice",
                                   "list each backend once, in lookup order")
        backends.append(kind)

    cfg = IdmapConfig(
        domain=domain,
        local_realms=tuple(realms),
        backends=tuple(backends),
        anon_uid=t.integer("anon_uid", NOBODY_ID),
        anon_gid=t.integer("anon_gid", NOBODY_ID),
        max_groups=t.integer("max_groups", 1024, minimum=1, maximum=65536),
        unmapped_principal=t.choice("unmapped_principal", UnmappedPolicy, UnmappedPolicy.ANON),
        foreign_owner=t.choice("foreign_owner", UnmappedPolicy, UnmappedPolicy.ANON),
        outage_delay=t.number("outage_delay", 30.0),
        max_inflight=t.integer("max_inflight", 16, minimum=1, maximum=256),
    )

    if (n := t.table("numeric", _fields(NumericConfig))) is not None:
        cfg.numeric = NumericConfig(
            accept_from_sys=n.flag("accept_from_sys", True),
            allow_with_gss=n.flag("allow_with_gss", False),
            emit_unmapped=n.flag("emit_unmapped", True),
        )
        n.finish()

    if (m := t.table("machine_principals", MACHINE_KEYS)) is not None:
        policy = m.choice("policy", MachinePolicy, MachinePolicy.ANON)
        uid = m.integer("uid", -1, minimum=-1)
        gid = m.integer("gid", -1, minimum=-1)
        if policy is MachinePolicy.ID and (uid < 0 or gid < 0):
            raise IdmapConfigError(m.key("uid"), 'policy "id" needs uid and gid',
                                   f"set {m.key('uid')} and {m.key('gid')}")
        if policy is MachinePolicy.ID and uid == 0:
            raise IdmapConfigError(m.key("uid"), "uid 0 is root",
                                   f'use {m.key("policy")} = "root" to make that explicit')
        services = m.strings("services", ["nfs", "host", "root"])
        cfg.machine = MachineConfig(
            policy=policy,
            uid=uid if uid >= 0 else None,
            gid=gid if gid >= 0 else None,
            services=tuple(services),
            computer_accounts=m.flag("computer_accounts", True),
        )
        m.finish()

    if (c := t.table("cache", _fields(CacheConfig))) is not None:
        cfg.cache = CacheConfig(
            positive_ttl=c.number("positive_ttl", 600.0),
            negative_ttl=c.number("negative_ttl", 60.0),
            stale_max=c.number("stale_max", 86400.0),
            max_entries=c.integer("max_entries", 100_000, minimum=1),
            max_negative=c.integer("max_negative", 50_000, minimum=0),
        )
        c.finish()

    s = t.table("static", _fields(StaticConfig))
    if BackendKind.STATIC in backends:
        if s is None:
            raise IdmapConfigError(t.key("static.path"), 'backend "static" needs a file',
                                   f'add [{t.key("static")}] path = "/etc/securenfs/idmap.static"')
        cfg.static = StaticConfig(path=str(s.text("path", None, required=True)))
    if s is not None:
        s.finish()

    lt = t.table("ldap", LDAP_KEYS)
    if BackendKind.LDAP in backends:
        if lt is None:
            raise IdmapConfigError(t.key("ldap"), 'backend "ldap" is listed but not configured',
                                   f"add a [{t.key('ldap')}] table with uris and base")
        cfg.ldap = _parse_ldap(lt)
    if lt is not None:
        lt.finish()

    t.finish()
    return cfg


def _parse_ldap(t: _Table) -> LdapConfig:
    if not t.has("uris") or t.data["uris"] == []:
        raise IdmapConfigError(t.key("uris"), "is required (at least one server)",
                               f'set {t.key("uris")} = ["ldap://dc1.example.com"]')
    uris = t.strings("uris", [], nonempty=True)
    tls = t.choice("tls", TlsMode, TlsMode.NONE)
    for i, uri in enumerate(uris):
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
        if scheme not in ("ldap", "ldaps", "ldapi"):
            raise IdmapConfigError(f"{t.key('uris')}[{i}]", f"{uri!r} is not an LDAP URI",
                                   'write "ldap://host", "ldaps://host" or "ldapi://path"')
        if scheme == "ldaps" and tls is TlsMode.STARTTLS:
            raise IdmapConfigError(t.key("tls"), f"StartTLS cannot be used with {uri}",
                                   'use tls = "ldaps" or ldap:// URIs')
    if any(u.lower().startswith("ldaps://") for u in uris) and tls is TlsMode.NONE:
        tls = TlsMode.LDAPS
    base = str(t.text("base", None, required=True))
    schema = t.choice("schema", SchemaProfile, SchemaProfile.RFC2307)
    defaults = PROFILE_DEFAULTS[schema]
    attrs = LdapAttributes(*(getattr(defaults, f) for f in LdapAttributes.__slots__))
    if (a := t.table("attributes", _fields(LdapAttributes))) is not None:
        for name in LdapAttributes.__slots__:
            if name == "member_is_dn":
                attrs.member_is_dn = a.flag(name, defaults.member_is_dn)
            else:
                setattr(attrs, name, a.text(name, getattr(defaults, name)))
        a.finish()
    nesting = t.choice("nesting", Nesting, PROFILE_NESTING[schema])
    if nesting is not Nesting.NONE and not attrs.member_is_dn:
        raise IdmapConfigError(t.key("nesting"), "nested groups need DN-valued members",
                               'use schema "rfc2307bis" or "ad", or nesting = "none"')
    bind = t.choice("bind", BindMethod, BindMethod.ANONYMOUS)
    cfg = LdapConfig(
        uris=uris,
        base=base,
        user_base=str(t.text("user_base", base)),
        group_base=str(t.text("group_base", base)),
        schema=schema,
        attributes=attrs,
        user_filter=_filter(t, "user_filter"),
        group_filter=_filter(t, "group_filter"),
        nesting=nesting,
        nesting_level=t.integer("nesting_level", 2, minimum=0, maximum=16),
        principal_lookup=t.choice("principal_lookup", PrincipalLookup, PrincipalLookup.BOTH),
        tls=tls,
        ca_file=t.text("ca_file", None),
        tls_require_cert=t.flag("tls_require_cert", True),
        bind=bind,
        bind_dn=t.text("bind_dn", None),
        bind_password=None,
        keytab=str(t.text("keytab", "/etc/krb5.keytab")),
        sasl_principal=t.text("sasl_principal", None),
        timeout=t.number("timeout", 4.0, minimum=0.05),
        reconnect_min=t.number("reconnect_min", 5.0, minimum=0.0),
        reconnect_max=t.number("reconnect_max", 300.0, minimum=0.0),
        size_limit=t.integer("size_limit", 2000, minimum=1),
    )
    password = t.text("bind_password", None)
    password_file = t.text("bind_password_file", None)
    if bind is BindMethod.SIMPLE:
        if not cfg.bind_dn:
            raise IdmapConfigError(t.key("bind_dn"), 'bind = "simple" needs a bind DN',
                                   f"set {t.key('bind_dn')}")
        if password_file is not None:
            try:
                with open(password_file, encoding="utf-8") as fh:
                    password = fh.read().rstrip("\r\n")
            except OSError as exc:
                raise IdmapConfigError(
                    t.key("bind_password_file"), f"cannot read {password_file}: {exc.strerror}",
                    "check the path and that the server's user may read it",
                ) from None
        if password is None:
            raise IdmapConfigError(t.key("bind_password_file"), 'bind = "simple" needs a password',
                                   f"set {t.key('bind_password_file')} to a file holding it")
        cfg.bind_password = password
    if cfg.reconnect_max < cfg.reconnect_min:
        raise IdmapConfigError(t.key("reconnect_max"), "is smaller than reconnect_min",
                               "make reconnect_max >= reconnect_min")
    return cfg


def _filter(t: _Table, name: str) -> str:
    value = str(t.get(name, str, "", "an LDAP filter string")).strip()
    if value and not (value.startswith("(") and value.endswith(")")
                      and value.count("(") == value.count(")")):
        raise IdmapConfigError(t.key(name), f"{value!r} is not a parenthesised LDAP filter",
                               'write a filter such as "(!(userAccountControl:1.2.840.113556.'
                               '1.4.803:=2))"')
    return value


def effective_table(cfg: IdmapConfig) -> dict[str, Any]:
    """The ``[idmap]`` table this configuration amounts to, every default filled in.

    Keys are the TOML keys (``machine_principals``, not ``machine``); a value that is not set
    is None; the LDAP bind password is never included (``bind_password_set`` says whether
    there is one).  Parsing the table again gives the same configuration.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    def record(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in skip}

    out = record(cfg, ("numeric", "machine", "cache", "ldap", "static"))
    out["numeric"] = record(cfg.numeric)
    out["machine_principals"] = record(cfg.machine)
    out["cache"] = record(cfg.cache)
    if cfg.static is not None:
        out["static"] = record(cfg.static)
    if cfg.ldap is not None:
        ldap = record(cfg.ldap, ("attributes", "bind_password"))
        ldap["bind_password_set"] = cfg.ldap.bind_password is not None
        ldap["attributes"] = record(cfg.ldap.attributes)
        out["ldap"] = ldap
    return out


__all__ = [
    "BackendKind", "BindMethod", "CacheConfig", "IdmapConfig", "IdmapConfigError",
    "LdapAttributes", "LdapConfig", "MachineConfig", "MachinePolicy", "Nesting",
    "NumericConfig", "PrincipalLookup", "SchemaProfile", "StaticConfig", "TlsMode",
    "UnmappedPolicy", "effective_table",
]

