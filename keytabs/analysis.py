"""Judging a keytab: file safety, acceptor principals, enctypes and key versions."""

from __future__ import annotations

import enum
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

from keytabs.enctypes import Strength, enctype_name, strength
from keytabs.keytab import Keytab, KeytabEntry, Principal


class Level(enum.IntEnum):
    OK = 0
    WARNING = 10
    ERROR = 20
    CRITICAL = 30


@dataclass(slots=True)
class Finding:
    level: Level
    summary: str
    detail: str = ""
    remedy: str = ""
    key: str = ""
    #: The key version the KDC issues, where the finding learnt it.
    kdc_kvno: int | None = None


@dataclass(slots=True)
class FileStatus:
    path: str
    exists: bool
    mode: int | None = None
    uid: int | None = None
    is_file: bool = False


def file_status(path: str | os.PathLike[str]) -> FileStatus:
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return FileStatus(p, False)
    return FileStatus(p, True, stat.S_IMODE(st.st_mode), st.st_uid, stat.S_ISREG(st.st_mode))


def permission_finding(fs: FileStatus, service_uid: int | None = None) -> Finding:
    """Keys in a keytab let anyone who reads it impersonate the server: mode 0600 at most."""
    if not fs.exists or fs.mode is None:
        return Finding(
            Level.CRITICAL,
            f"keytab {fs.path} does not exist",
            remedy="Create it: MIT `kadmin -q 'ktadd -k FILE nfs/FQDN'`, AD `adcli join` / "
            "`adcli update --service-name=nfs`, IPA `ipa-getkeytab -p nfs/FQDN -k FILE`.",
        )
    mode = fs.mode
    if mode & stat.S_IROTH or mode & stat.S_IWOTH:
        return Finding(
            Level.ERROR,
            f"keytab {fs.path} is world-accessible (mode {mode:04o})",
            detail="Any local user can read the service keys and impersonate this server.",
            remedy=f"chmod 600 {fs.path}; then re-key the service principals, since the keys "
            "may have been copied.",
        )
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        return Finding(
            Level.WARNING,
            f"keytab {fs.path} is group-accessible (mode {mode:04o})",
            remedy=f"chmod 600 {fs.path} unless the group is meant to hold the server's keys.",
        )
    if service_uid is not None and fs.uid not in (0, service_uid):
        return Finding(
            Level.WARNING,
            f"keytab {fs.path} is owned by uid {fs.uid}",
            remedy=f"chown root {fs.path} (or the server's user).",
        )
    return Finding(Level.OK, f"keytab {fs.path} is private (mode {mode:04o})")


def default_acceptor_principals(
    fqdn: str, realm: str, services: tuple[str, ...] = ("nfs",)
) -> list[Principal]:
    host = fqdn.lower().rstrip(".")
    return [Principal((svc, host), realm) for svc in services]


def host_principals(kt: Keytab, fqdn: str | None = None) -> list[Principal]:
    """Principals in the keytab that name this host as service/host (acceptor candidates)."""
    host = (fqdn or socket.getfqdn()).lower().rstrip(".")
    return [p for p in kt.principals() if p.host is not None and p.host.lower() == host]


def latest_entries(entries: list[KeytabEntry]) -> list[KeytabEntry]:
    if not entries:
        return []
    top = max(e.kvno for e in entries)
    return [e for e in entries if e.kvno == top]


def enctype_finding(principal: Principal, entries: list[KeytabEntry]) -> Finding:
    """Judge the keys of the newest kvno of one principal."""
    current = latest_entries(entries)
    types = sorted({e.enctype for e in current})
    names = ", ".join(enctype_name(t) for t in types)
    classes = {strength(t) for t in types}
    remedy = (
        f"Re-key {principal} with AES keys. MIT/IPA: `kadmin -q 'ktadd -e "
        "aes256-cts:normal,aes128-cts:normal -k KEYTAB PRINCIPAL'`; AD: set "
        "msDS-SupportedEncryptionTypes=24 on the computer object and run "
        "`adcli update --computer-password-lifetime=0`."
    )
    key = str(principal)
    if not types:
        return Finding(Level.CRITICAL, f"{principal} has no keys", key=key, remedy=remedy)
    if Strength.STRONG not in classes:
        if classes <= {Strength.DES}:
            return Finding(
                Level.CRITICAL,
                f"{principal} has only single-DES keys ({names})",
                detail="Single DES is broken and disabled in MIT krb5 >= 1.18 and in AD.",
                remedy=remedy,
                key=key,
            )
        return Finding(
            Level.ERROR,
            f"{principal} has no AES key, only {names}",
            detail="RC4 and 3DES are deprecated (RFC 8429); AD stops issuing RC4 service "
            "tickets by default (KB5073381), and FIPS systems refuse them.",
            remedy=remedy,
            key=key,
        )
    weak = [t for t in types if strength(t) in (Strength.DES, Strength.WEAK)]
    if weak:
        return Finding(
            Level.WARNING,
            f"{principal} also has weak keys ({', '.join(enctype_name(t) for t in weak)})",
            detail=f"kvno {current[0].kvno} enctypes: {names}",
            remedy="Remove the weak keys once no client needs them (re-key with AES only).",
            key=key,
        )
    return Finding(Level.OK, f"{principal} has AES keys ({names})", key=key)


#: Kerberos error texts that mean "the keytab's key is not the one the KDC holds".
STALE_KEY_ERRORS = re.compile(r"decrypt integrity check failed|preauthentication failed|password incorrect",
                              re.IGNORECASE)
#: ... and those that mean the KDC no longer knows the principal at all (MIT words it
#: "Client 'nfs/h@R' not found in Kerberos database").
PRINCIPAL_GONE_ERRORS = re.compile(r"(client|server)\b.*\bnot found in kerberos database", re.IGNORECASE)


def is_stale_key_error(message: str) -> bool:
    return STALE_KEY_ERRORS.search(message) is not None


def is_principal_gone_error(message: str) -> bool:
    return PRINCIPAL_GONE_ERRORS.search(message) is not None


def refresh_commands(principal: Principal | str, keytab: str) -> str:
    """How to put the KDC's current key into the keytab, for each kind of KDC."""
    return (
        f"Copy the KDC's current key into the keytab. MIT: `kadmin -q 'ktadd -norandkey -k {keytab} "
        f"{principal}'` (keeps the key; without -norandkey ktadd re-keys); IPA: `ipa-getkeytab -r -p "
        f"{principal} -k {keytab}`; AD: `adcli update` (sets a new machine password and writes the "
        "keytab). If several servers share this principal, only one may re-key it and the others "
        "must copy its keytab."
    )


def kvno_text(kvnos: list[int]) -> str:
    return ", ".join(map(str, kvnos)) or "none"


def stale_finding(
    principal: Principal,
    entries: list[KeytabEntry],
    kdc_kvno: int | None,
    error: str,
    keytab: str = "KEYTAB",
    unknown_because: str = "",
) -> Finding:
    """The keytab's key was refused (or tickets come under a kvno it lacks): it is stale."""
    have = sorted({e.kvno for e in entries})
    holds = f"kvno {kvno_text(have)}" if len(have) < 2 else f"kvnos {kvno_text(have)}"
    if kdc_kvno is None:
        summary = (f"the keytab is stale for {principal}: it holds {holds}, and the KDC no longer "
                   "accepts that key" + (f" ({unknown_because})" if unknown_because else ""))
    elif kdc_kvno in have:
        summary = (f"the keytab is stale for {principal}: it holds kvno {kdc_kvno}, the kvno the KDC "
                   "issues, but not the same key (the key was changed without a new kvno)")
    else:
        summary = f"the keytab is stale for {principal}: it holds {holds}, the KDC issues {kdc_kvno}"
    return Finding(
        Level.CRITICAL,
        summary,
        detail=(f"Kerberos said: {error}. " if error else "")
        + "Clients get tickets this server cannot decrypt ('kvno not found in keytab').",
        remedy=refresh_commands(principal, keytab),
        key=str(principal),
        kdc_kvno=kdc_kvno,
    )


def gone_finding(principal: Principal, error: str, keytab: str = "KEYTAB") -> Finding:
    """The KDC no longer knows a principal the keytab holds."""
    return Finding(
        Level.CRITICAL,
        f"{principal}: the principal was deleted or renamed in the KDC",
        detail=f"Kerberos said: {error}",
        remedy=f"Re-create it and export its key (MIT: `kadmin -q 'addprinc -randkey {principal}'`, "
        f"then `kadmin -q 'ktadd -k {keytab} {principal}'`; IPA: `ipa service-add`; AD: re-join with "
        "`adcli join`), or, if it was renamed, list the new name in kerberos.principals.",
        key=str(principal),
    )


def kvno_finding(
    principal: Principal,
    entries: list[KeytabEntry],
    kdc_kvno: int | None,
    kdc_enctype: int | None = None,
    error: str | None = None,
    keytab: str = "KEYTAB",
) -> Finding:
    """Compare the keytab's kvnos with the one the KDC issues tickets under."""
    have = sorted({e.kvno for e in entries})
    key = str(principal)
    if kdc_kvno is None:
        return Finding(
            Level.WARNING,
            f"could not learn the KDC's kvno for {principal}",
            detail=error or "",
            key=key,
            remedy="Check that the KDC is reachable and the keytab can obtain a TGT.",
        )
    if kdc_kvno not in have:
        return stale_finding(principal, entries, kdc_kvno, "", keytab)
    if kdc_enctype is not None and not any(
        e.kvno == kdc_kvno and e.enctype == kdc_enctype for e in entries
    ):
        return Finding(
            Level.ERROR,
            f"KDC issues {enctype_name(kdc_enctype)} tickets for {principal}, keytab has no such key",
            remedy="Re-export the keytab with all the principal's enctypes.",
            key=key,
        )
    return Finding(Level.OK, f"{principal} kvno {kdc_kvno} matches the KDC", key=key, kdc_kvno=kdc_kvno)


def describe_entry(e: KeytabEntry) -> dict[str, object]:
    return {
        "principal": str(e.principal),
        "kvno": e.kvno,
        "enctype": e.enctype_name,
        "enctype_number": e.enctype,
        "timestamp": e.timestamp,
    }


@dataclass(slots=True)
class KeytabReport:
    path: Path
    findings: list[Finding] = field(default_factory=list)

    @property
    def worst(self) -> Level:
        return max((f.level for f in self.findings), default=Level.OK)
