"""RPCSEC_GSS version 1 protocol numbers (RFC 2203 §5), declared once."""

from __future__ import annotations

import enum
from typing import Final

RPCSEC_GSS_VERS_1: Final = 1

#: RFC 2203 §5.3.3.1: sequence numbers at or above MAXSEQ end the context.
MAXSEQ: Final = 0x80000000

#: RFC 2203 §5.2.3.1 suggests a window; Linux clients keep up to 128 calls in flight.
DEFAULT_SEQ_WINDOW: Final = 128

#: Service names accepted when ``kerberos.principals`` is empty: ``nfs/<hostname>`` and
#: ``host/<hostname>`` of any realm in the keytab (the keytab must hold at least one).
DEFAULT_ACCEPTOR_SERVICES: Final = ("nfs", "host")

#: Handles are 16 random bytes; anything longer on the wire is not ours.
HANDLE_BYTES: Final = 16
MAX_HANDLE_BYTES: Final = 64

#: Largest INIT token accepted.  Active Directory tickets carrying a PAC with many groups
#: reach tens of KiB; the Linux kernel's 400-byte limit is why gssproxy exists.
MAX_INIT_TOKEN: Final = 256 * 1024


class GssProc(enum.IntEnum):
    DATA = 0
    INIT = 1
    CONTINUE_INIT = 2
    DESTROY = 3


class GssService(enum.IntEnum):
    NONE = 1
    INTEGRITY = 2
    PRIVACY = 3


# GSS-API major status routine errors (RFC 2744 §3.9.1), shifted into place.
GSS_S_COMPLETE: Final = 0
GSS_S_CONTINUE_NEEDED: Final = 1
GSS_S_BAD_SIG: Final = 6 << 16
GSS_S_DEFECTIVE_TOKEN: Final = 9 << 16
GSS_S_NO_CONTEXT: Final = 8 << 16
GSS_S_CREDENTIALS_EXPIRED: Final = 11 << 16
GSS_S_CONTEXT_EXPIRED: Final = 12 << 16
GSS_S_FAILURE: Final = 13 << 16
