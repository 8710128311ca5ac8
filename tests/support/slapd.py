"""A real OpenLDAP slapd for the idmap tests, loaded with the nis schema and test data.

The directory is built offline with slapadd (fast: 10,000 users in about a second) and then
started by python-ldap's slapdtest helpers on a free loopback port, in a private temporary
directory.  Data layout (suffix dc=example,dc=test, realm EXAMPLE.TEST):

* ``ou=people``: ``u00000`` .. ``u09999`` with uidNumber 100000+i, gidNumber 200000+i%1000,
  krbPrincipalName ``uNNNNN@EXAMPLE.TEST``, sAMAccountName and userPrincipalName
  ``uNNNNN@example.test``; plus the special users in :data:`SPECIAL_USERS`.
* ``ou=groups``: ``g0000`` .. ``g0999`` with gidNumber 200000+j; the members of g(j) are
  the users whose (i+1) % 1000 == j, as memberUid names and as member DNs; plus nested
  groups (staff <- eng <- all <- deep) and a membership cycle (cyc-a <-> cyc-b).

Every user and group carries the attributes of all three schema profiles (RFC 2307,
rfc2307bis, AD), so one directory serves the tests of each profile.  ``user``/``group``
and the Kerberos attributes come from a small schema of our own (AD's and MIT's OIDs).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUFFIX = "dc=example,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
REALM = "EXAMPLE.TEST"
DOMAIN = "example.test"
USERS = 10_000
GROUP_COUNT = 1_000
UID_BASE = 100_000
GID_BASE = 200_000

# Test schema: the attributes the AD and Kerberos profiles need, with their real OIDs.
# user/group are AUXILIARY here (in AD they are structural) so they can sit on the same
# entries as posixAccount/posixGroup.
TEST_SCHEMA = """\
dn: cn=securenfs-test,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: securenfs-test
olcAttributeTypes: ( 2.16.840.1.113719.1.301.4.1.1 NAME 'krbPrincipalName'
  EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
olcAttributeTypes: ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
olcAttributeTypes: ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
olcObjectClasses: ( 2.16.840.1.113719.1.301.6.8.1 NAME 'krbPrincipalAux' SUP top
  AUXILIARY MAY krbPrincipalName )
olcObjectClasses: ( 1.2.840.113556.1.5.9 NAME 'user' SUP top AUXILIARY
  MAY ( sAMAccountName $ userPrincipalName ) )
olcObjectClasses: ( 1.2.840.113556.1.5.8 NAME 'group' SUP top AUXILIARY
  MAY ( sAMAccountName $ member ) )
"""

INDEXES = ["objectClass eq", "uid eq", "uidNumber eq", "gidNumber eq", "cn eq",
           "memberUid eq", "member eq", "krbPrincipalName eq", "sAMAccountName eq",
           "userPrincipalName eq"]

# name, uidNumber, gidNumber, krbPrincipalName (None: the default name@REALM)
SPECIAL_USERS: list[tuple[str, int, int, str | None]] = [
    ("alice", 5001, 5000, None),
    ("bob", 5002, 5000, "robert@EXAMPLE.TEST"),  # principal differs from the short name
    ("st*r", 6001, 5000, None),  # filter metacharacters in real names
    ("stXr", 6002, 5000, None),  # what an unescaped "st*r" would also match
    ("pa(re)n", 6003, 5000, None),
    ("back\\slash", 6004, 5000, None),
    ("HOST$", 7001, 7000, None),  # an AD computer account with POSIX ids
]
# name, gidNumber, member users, member groups
SPECIAL_GROUPS: list[tuple[str, int, list[str], list[str]]] = [
    ("staff", 5000, ["alice", "bob"], []),
    ("eng", 5100, [], ["staff"]),
    ("all", 5200, [], ["eng"]),
    ("deep", 5300, [], ["all"]),  # three levels above staff: beyond nesting_level 2
    ("cyc-a", 5400, ["alice"], ["cyc-b"]),
    ("cyc-b", 5401, [], ["cyc-a"]),
    ("a*", 5500, [], []),
    ("computers", 7000, [], []),
]


def _dn_value(value: str) -> str:
    """Escape an RDN value for a DN string (RFC 4514 §2.4)."""
    out = []
    for ch in value:
        if ch in ',+"\\<>;=#':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def user_dn(name: str) -> str:
    return f"uid={_dn_value(name)},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={_dn_value(name)},{GROUPS}"


def _user_ldif(name: str, uid: int, gid: int, principal: str | None) -> str:
    principal = principal or f"{name}@{REALM}"
    return (
        f"dn: {user_dn(name)}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
        f"objectClass: krbPrincipalAux\nobjectClass: user\n"
        f"cn: {name}\nsn: {name}\nuid: {name}\nuidNumber: {uid}\ngidNumber: {gid}\n"
        f"homeDirectory: /home/{name}\nkrbPrincipalName: {principal}\n"
        f"sAMAccountName: {name}\nuserPrincipalName: {principal.split('@')[0]}@{DOMAIN}\n\n"
    )


def _group_ldif(name: str, gid: int, users: list[str], groups: list[str]) -> str:
    lines = [f"dn: {group_dn(name)}", "objectClass: posixGroup", "objectClass: group",
             f"cn: {name}", f"gidNumber: {gid}", f"sAMAccountName: {name}"]
    lines += [f"memberUid: {u}" for u in users]
    lines += [f"member: {user_dn(u)}" for u in users]
    lines += [f"member: {group_dn(g)}" for g in groups]
    return "\n".join(lines) + "\n\n"


def directory_ldif(users: int = USERS, groups: int = GROUP_COUNT) -> str:
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        f"dc: example\no: Example\n\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n",
    ]
    for i in range(users):
        parts.append(_user_ldif(f"u{i:05d}", UID_BASE + i, GID_BASE + i % groups, None))
    for spec in SPECIAL_USERS:
        parts.append(_user_ldif(*spec))
    members: dict[int, list[str]] = {}
    for i in range(users):
        members.setdefault((i + 1) % groups, []).append(f"u{i:05d}")
    for j in range(groups):
        parts.append(_group_ldif(f"g{j:04d}", GID_BASE + j, members.get(j, []), []))
    for gspec in SPECIAL_GROUPS:
        parts.append(_group_ldif(*gspec))
    return "".join(parts)


def _slapd_class() -> type:
    # slapdtest sets LDAPNOINIT=1 at import (no ~/.ldaprc or ldap.conf); import lazily.
    from slapdtest import SlapdObject

    class IdmapSlapd(SlapdObject):  # type: ignore[misc, valid-type]
        suffix = SUFFIX
        slapd_loglevel = "0"
        openldap_schema_files = ("core.ldif", "cosine.ldif", "nis.ldif", "inetorgperson.ldif")
        data_ldif = ""
        #: SASL/GSSAPI: the host part of slapd's ldap/ principal and its realm ("" = no SASL).
        sasl_host = ""
        sasl_realm = ""

        def _write_config(self) -> None:
            # Schema before the database entry, so its olcDbIndex can name nis attributes.
            text = self.gen_config()
            glob, _, database = text.partition("dn: cn=module,cn=config")
            if self.sasl_host:
                glob = glob.replace("olcAllows: bind_v2\n", f"olcAllows: bind_v2\nolcSaslHost: {self.sasl_host}\n"
                                    + (f"olcSaslRealm: {self.sasl_realm}\n" if self.sasl_realm else ""))
            self.slapadd(glob, ["-n0"])
            for schema in self.openldap_schema_files:
                self.slapadd(None, ["-n0", "-l", os.path.join(self.SCHEMADIR, schema)])
            self.slapadd(TEST_SCHEMA, ["-n0"])
            database = "dn: cn=module,cn=config" + database.rstrip("\n") + "\n"
            database += "olcDbMaxSize: 1073741824\n"
            database += "".join(f"olcDbIndex: {i}\n" for i in INDEXES)
            self.slapadd(database, ["-n0"])
            if self.data_ldif:
                self.slapadd(self.data_ldif, ["-n1", "-q"])

    return IdmapSlapd


@dataclass
class Directory:
    """A running slapd with the test data; ``uri`` is ldap://127.0.0.1:PORT."""

    server: object
    tmpdir: str

    @property
    def uri(self) -> str:
        return str(self.server.ldap_uri).rstrip("/")  # type: ignore[attr-defined]

    @property
    def cafile(self) -> str:
        return str(self.server.cafile)  # type: ignore[attr-defined]

    @property
    def pid(self) -> int:
        return int(self.server._proc.pid)  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Stop slapd, keeping its data (connections are refused until start())."""
        self.server.terminate()  # type: ignore[attr-defined]
        self.server.wait()  # type: ignore[attr-defined]

    def start(self) -> None:
        self.server.resume()  # type: ignore[attr-defined]

    def freeze(self) -> None:
        """SIGSTOP slapd: connections hang (the kernel still accepts them).

        kill() returns before every thread has actually stopped, so wait until all of
        slapd's threads show the stopped state; otherwise a request sent right after could
        still be answered by a thread that has not stopped yet.
        """
        pid = self.pid
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = []
            for task in Path(f"/proc/{pid}/task").iterdir():
                try:
                    stat = (task / "stat").read_text()
                except FileNotFoundError:
                    continue
                states.append(stat[stat.rindex(")") + 2])
            if states and all(st in "Tt" for st in states):
                return
            time.sleep(0.01)
        raise RuntimeError("slapd did not stop after SIGSTOP")

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def close(self) -> None:
        try:
            if self.server._proc is not None:  # type: ignore[attr-defined]
                try:
                    self.thaw()
                except ProcessLookupError:
                    pass
            self.server.stop()  # type: ignore[attr-defined]
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def start_directory(users: int = USERS, groups: int = GROUP_COUNT, *, sasl_host: str = "",
                    sasl_realm: str = "") -> Directory:
    """Start a slapd loaded with ``users`` users and ``groups`` groups; call close().  With
    ``sasl_host``, slapd accepts SASL/GSSAPI binds as ldap/<sasl_host>@<sasl_realm> (its key
    from KRB5_KTNAME in the environment it starts with)."""
    cls = _slapd_class()
    tmpdir = tempfile.mkdtemp(prefix="idmap-slapd-")
    cls.TMPDIR = tmpdir
    cls.sasl_host, cls.sasl_realm = sasl_host, sasl_realm
    server = cls()
    server.data_ldif = directory_ldif(users, groups)
    server.sasl_host = sasl_host
    directory = Directory(server, tmpdir)
    atexit.register(directory.close)
    try:
        server.start()
    except BaseException:
        directory.close()
        raise
    return directory


@pytest.fixture(scope="session")
def slapd_directory() -> Iterator[Directory]:
    """The shared 10,000-user directory (read-only: tests must not stop or modify it)."""
    directory = start_directory()
    try:
        yield directory
    finally:
        directory.close()


@pytest.fixture
def small_directory() -> Iterator[Directory]:
    """A private small directory that a test may stop, freeze and restart."""
    directory = start_directory(users=50, groups=10)
    try:
        yield directory
    finally:
        directory.close()
