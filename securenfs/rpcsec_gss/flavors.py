"""The Kerberos V5 pseudo-flavors of RFC 2623 §2.2 and their RPCSEC_GSS triples.

SECINFO (RFC 8881 §18.29) answers with (mechanism OID, qop, service) for each RPCSEC_GSS
flavor, and the security policy compares a caller's pseudo-flavor with an export's list.
Both come from this one table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from securenfs.rpc.auth import PSEUDO_FLAVORS
from securenfs.rpcsec_gss.constants import GssService

#: The Kerberos V5 GSS-API mechanism, 1.2.840.113554.1.2.2 (RFC 1964 / RFC 4121).
KRB5_OID_DOTTED: Final = "1.2.840.113554.1.2.2"
#: Its DER encoding without the 0x06 tag and length, as SECINFO carries it (sec_oid4).
KRB5_OID_DER: Final = bytes.fromhex("2a864886f712010202")
#: The default quality of protection (RFC 2623 §2.2: only 0 is defined for krb5).
KRB5_QOP_DEFAULT: Final = 0


class PseudoFlavor(enum.IntEnum):
    KRB5 = PSEUDO_FLAVORS["krb5"]
    KRB5I = PSEUDO_FLAVORS["krb5i"]
    KRB5P = PSEUDO_FLAVORS["krb5p"]


@dataclass(slots=True, frozen=True)
class SecTriple:
    """One RPCSEC_GSS security triple (RFC 2203 §5, RFC 8881 §18.29 rpcsec_gss_info)."""

    flavor: PseudoFlavor
    name: str
    oid: bytes
    qop: int
    service: GssService


TRIPLES: Final[tuple[SecTriple, ...]] = (
    SecTriple(PseudoFlavor.KRB5, "krb5", KRB5_OID_DER, KRB5_QOP_DEFAULT, GssService.NONE),
    SecTriple(PseudoFlavor.KRB5I, "krb5i", KRB5_OID_DER, KRB5_QOP_DEFAULT, GssService.INTEGRITY),
    SecTriple(PseudoFlavor.KRB5P, "krb5p", KRB5_OID_DER, KRB5_QOP_DEFAULT, GssService.PRIVACY),
)

_BY_FLAVOR: Final = {t.flavor: t for t in TRIPLES}
_BY_NAME: Final = {t.name: t for t in TRIPLES}
_BY_SERVICE: Final = {t.service: t for t in TRIPLES}


def triple_for_flavor(flavor: int) -> SecTriple:
    """The triple of a pseudo-flavor; KeyError for anything else."""
    return _BY_FLAVOR[PseudoFlavor(flavor)]


def triple_for_name(name: str) -> SecTriple:
    """The triple for a config/export name: ``krb5``, ``krb5i`` or ``krb5p``."""
    return _BY_NAME[name]


def pseudo_flavor_for_service(service: int) -> PseudoFlavor:
    """The pseudo-flavor a call made with the krb5 mechanism and ``service`` counts as."""
    return _BY_SERVICE[GssService(service)].flavor


def triple_for_oid_service(oid: bytes, service: int, qop: int = KRB5_QOP_DEFAULT) -> SecTriple | None:
    """Reverse lookup (a SECINFO triple back to its flavor); None when not Kerberos V5."""
    if oid != KRB5_OID_DER or qop != KRB5_QOP_DEFAULT:
        return None
    try:
        return _BY_SERVICE[GssService(service)]
    except ValueError:
        return None
