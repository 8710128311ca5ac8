"""One RPCSEC_GSS context as the server keeps it (RFC 2203 §5.2.3)."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from securenfs.rpc.auth import Principal
from securenfs.rpcsec_gss.protection import Protection, ProtectionInfo
from securenfs.rpcsec_gss.seqwindow import SeqWindow


class CtxState(enum.Enum):
    #: INIT answered with CONTINUE_NEEDED; waiting for CONTINUE_INIT.
    PENDING = "pending"
    ESTABLISHED = "established"
    #: Removed from the table (DESTROY, expiry, MAXSEQ, eviction); calls in flight finish.
    DEAD = "dead"


@dataclass(slots=True, eq=False)
class GssContext:
    handle: bytes
    peer: str
    created: float
    last_used: float
    #: Monotonic time at which the context ends: the ticket's end time (RFC 2203 §5.3.3.3 --
    #: past it the client gets RPCSEC_GSS_CREDPROBLEM and must refresh).
    expires_at: float
    window: SeqWindow
    state: CtxState = CtxState.PENDING
    #: The python-gssapi acceptor context while PENDING (and for inquiries afterwards).
    gss: Any = None
    protection: Protection | None = None
    #: Which engine protects this context's messages and why (set with ``protection``).
    protection_info: ProtectionInfo | None = None
    principal: Principal | None = None
    #: The service principal the client's ticket was for (which keytab key was used).
    acceptor_name: str = ""
    #: Wall-clock end time, for logs and the admin view.
    expires_wall: float = 0.0
    #: True while a CONTINUE_INIT step is running in the pool (concurrent legs are dropped).
    busy: bool = False
    calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def short_handle(self) -> str:
        return self.handle[:4].hex()

    def label(self) -> str:
        who = str(self.principal) if self.principal else "(establishing)"
        return f"ctx={self.short_handle} {who}"

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for the admin interface (no key material)."""
        info = self.protection_info
        return {
            "handle": self.handle.hex(),
            "peer": self.peer,
            "principal": str(self.principal) if self.principal else None,
            "acceptor": self.acceptor_name,
            "state": self.state.value,
            "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_wall)) if self.expires_wall else None,
            "calls": self.calls,
            "seq_top": self.window.top,
            # "openssl" (the fast path) or "mit"; "implementation" tells the MIT variants apart.
            "protection": info.engine.value if info else None,
            "implementation": self.protection.kind if self.protection else None,
            "enctype": info.enctype if info else None,
            "fast_path_not_used_because": info.reason if info and info.reason else None,
        }
