"""Acceptor credentials from the configured keytab, and the principals they may accept as.

Credentials come only from ``kerberos.keytab`` (the ``keytab`` cred store), never from a
default ccache or KRB5_KTNAME.  One credential with no name (GSS_C_NO_NAME) accepts any key
in the keytab, which is what multi-homed hosts with several ``nfs/<name>`` keys need; the
service principal the client's ticket was for is then checked against the allowed list and
logged.  At start every configured principal is checked to have a usable key, and a problem
is reported with the principal, its kvnos and enctypes as the keytab holds them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gssapi
from gssapi.raw.misc import GSSError

from keytabs.enctypes import Strength, enctype_name, strength
from keytabs.keytab import Keytab, KeytabError, read_keytab
from keytabs.keytab import Principal as KtPrincipal
from securenfs.rpcsec_gss.constants import DEFAULT_ACCEPTOR_SERVICES
from securenfs.rpcsec_gss.gsserrors import translate_exception

log = logging.getLogger("securenfs.rpcsec_gss")


class KeytabProblem(Exception):
    """The keytab cannot serve Kerberos exports; the message names principal, kvno, enctype."""


@dataclass(slots=True, frozen=True)
class AllowedName:
    """A configured acceptor principal; no realm means any realm in the keytab."""

    components: tuple[str, ...]
    realm: str | None

    @classmethod
    def parse(cls, text: str) -> AllowedName:
        p = KtPrincipal.parse(text)
        return cls(tuple(p.components), p.realm or None)

    def matches(self, name: str) -> bool:
        try:
            p = KtPrincipal.parse(name)
        except ValueError:
            return False
        if self.realm is not None and p.realm != self.realm:
            return False
        if len(p.components) != len(self.components) or p.components[0] != self.components[0]:
            return False
        return all(a.lower() == b.lower() for a, b in zip(p.components[1:], self.components[1:]))

    def __str__(self) -> str:
        name = "/".join(self.components)
        return f"{name}@{self.realm}" if self.realm else name


def describe_entries(kt: Keytab, limit: int = 12) -> str:
    if not kt.entries:
        return "the keytab is empty"
    items = [f"{e.principal} kvno {e.kvno} {enctype_name(e.enctype)}" for e in kt.entries[:limit]]
    more = f" and {len(kt.entries) - limit} more" if len(kt.entries) > limit else ""
    return "; ".join(items) + more


class Acceptor:
    """The server's acceptor credentials and the names it answers to."""

    def __init__(self, keytab: Path, creds: gssapi.Credentials, allowed: Sequence[AllowedName], kt: Keytab):
        self.keytab = keytab
        self.creds = creds
        self.allowed = tuple(allowed)
        self.kt = kt

    @classmethod
    def load(cls, keytab: str | os.PathLike[str], principals: Sequence[str], hostname: str) -> Acceptor:
        """Check the keytab and acquire acceptor credentials from it.

        ``principals`` empty: ``nfs/<hostname>`` and ``host/<hostname>`` are accepted, and
        the keytab must hold at least one of them.  Otherwise every listed principal must be
        present.  Raises :class:`KeytabProblem`.
        """
        path = Path(keytab)
        try:
            kt = read_keytab(path)
        except KeytabError as exc:
            raise KeytabProblem(f"kerberos.keytab {exc}; point kerberos.keytab (or --keytab) at the "
                                "service keytab and make it readable by the server") from None
        explicit = bool(principals)
        names = [AllowedName.parse(p) for p in principals] if explicit else [
            AllowedName((svc, hostname), None) for svc in DEFAULT_ACCEPTOR_SERVICES]
        present = {str(n): [e for e in kt.entries if n.matches(str(e.principal))] for n in names}
        missing = [n for n in names if not present[str(n)]]
        if (explicit and missing) or (not explicit and len(missing) == len(names)):
            want = ", ".join(str(n) for n in (missing if explicit else names))
            raise KeytabProblem(
                f"keytab {path} has no key for {want}; it holds: {describe_entries(kt)}. "
                f"Add the service principal to the keytab (kadmin ktadd / adcli / ipa-getkeytab) "
                f"or list the principals to accept in kerberos.principals")
        for n in names:
            entries = present[str(n)]
            if not entries:
                log.info("keytab %s has no key for %s; it will not be accepted", path, n)
                continue
            usable = [e for e in entries if strength(e.enctype) is not Strength.DES]
            if not usable:
                e = entries[0]
                raise KeytabProblem(
                    f"keytab {path}: {e.principal} kvno {e.kvno} has only single-DES keys "
                    f"({', '.join(sorted({enctype_name(x.enctype) for x in entries}))}), which MIT krb5 no "
                    "longer accepts; re-key it with aes256-cts/aes128-cts and re-export the keytab")
            for e in entries:
                if strength(e.enctype) is Strength.WEAK:
                    log.warning("keytab %s: %s kvno %d has a weak %s key; re-key with AES", path,
                                e.principal, e.kvno, enctype_name(e.enctype))
        store: dict[bytes | str, bytes | str] = {"keytab": f"FILE:{path.resolve()}"}
        # Check each present principal has a key the library can use, naming it on failure.
        for n in names:
            for e in present[str(n)][:1]:
                try:
                    gssapi.Credentials(usage="accept", store=store,
                                       name=gssapi.Name(str(e.principal), gssapi.NameType.kerberos_principal))
                except GSSError as exc:
                    f = translate_exception(exc)
                    kvnos = sorted({x.kvno for x in present[str(n)]})
                    encs = sorted({enctype_name(x.enctype) for x in present[str(n)]})
                    raise KeytabProblem(
                        f"keytab {path}: cannot use the key of {e.principal} (kvno {', '.join(map(str, kvnos))}; "
                        f"enctypes {', '.join(encs)}): {f.describe()}") from None
        try:
            # Kerberos V5 only: without this, an empty or odd token would start SPNEGO.
            creds = gssapi.Credentials(usage="accept", store=store, mechs=[gssapi.MechType.kerberos])
        except GSSError as exc:
            raise KeytabProblem(f"keytab {path}: cannot acquire acceptor credentials: "
                                f"{translate_exception(exc).describe()}") from None
        acc = cls(path, creds, names, kt)
        log.info("Kerberos acceptor: keytab %s, accepting %s", path,
                 ", ".join(f"{n} (kvno {', '.join(str(k) for k in acc.kvnos(n))})" for n in names if present[str(n)]))
        return acc

    def kvnos(self, name: AllowedName | str) -> list[int]:
        n = name if isinstance(name, AllowedName) else AllowedName.parse(name)
        return sorted({e.kvno for e in self.kt.entries if n.matches(str(e.principal))})

    def keytab_summary(self, service_principal: str | None = None) -> str:
        """What the keytab holds (for one principal if given), for failure logs."""
        if service_principal:
            n = AllowedName.parse(service_principal)
            es = [e for e in self.kt.entries if n.matches(str(e.principal))]
            if not es:
                return f"keytab {self.keytab} has no key for {service_principal}"
            return f"keytab {self.keytab} holds {service_principal} with " + ", ".join(
                f"kvno {e.kvno} {enctype_name(e.enctype)}" for e in es)
        return f"keytab {self.keytab} holds: {describe_entries(self.kt)}"

    def is_allowed(self, service_principal: str) -> bool:
        return any(n.matches(service_principal) for n in self.allowed)

    def reload_keytab(self) -> None:
        """Re-read the keytab listing (used only to describe failures)."""
        try:
            self.kt = read_keytab(self.keytab)
        except KeytabError:
            pass
