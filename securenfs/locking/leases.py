"""Client leases for locking state, and the courteous-server policy (RFC 8881 §8.3, §8.4).

Every SEQUENCE renews its client's lease (:meth:`LeaseTable.renew`).  When a lease runs out the
client's opens and locks are *not* dropped: the client becomes a courtesy client and keeps
them until another client's request conflicts with one of them.  Then all of the expired
client's locking state is revoked at once (see ``LockingState._revoke_client``), its
stateids answer NFS4ERR_EXPIRED, and its SEQUENCE replies carry
SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED (RFC 8881 §18.46.3) until it has freed every revoked
stateid with FREE_STATEID.  Admin revocation uses SEQ4_STATUS_ADMIN_STATE_REVOKED.

Courtesy has bounds, so state of vanished clients cannot grow without end: at most
``max_courtesy_clients`` expired clients keep state, each for at most ``courtesy_max_age``
seconds after its lease ended; :meth:`LockingState.reap` discards the rest (oldest first).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from securenfs.nfs4.constants import SeqStatus

DEFAULT_LEASE_TIME: Final = 90.0
DEFAULT_MAX_COURTESY_CLIENTS: Final = 1024
#: A day, as the Linux server keeps courtesy clients.
DEFAULT_COURTESY_MAX_AGE: Final = 86400.0


@dataclass(slots=True)
class ClientLease:
    clientid: int
    last_renew: float
    #: ``other`` of each revoked stateid not yet freed by the client.
    revoked: set[bytes] = field(default_factory=set)
    #: SEQ4_STATUS bits reported while ``revoked`` is not empty.
    flags: int = 0


class LeaseTable:
    def __init__(self, lease_time: float = DEFAULT_LEASE_TIME, *, clock: Callable[[], float] = time.monotonic,
                 max_courtesy_clients: int = DEFAULT_MAX_COURTESY_CLIENTS,
                 courtesy_max_age: float = DEFAULT_COURTESY_MAX_AGE):
        if lease_time <= 0:
            raise ValueError("lease_time must be positive")
        self.lease_time = float(lease_time)
        self.clock = clock
        self.max_courtesy_clients = max_courtesy_clients
        self.courtesy_max_age = courtesy_max_age
        self._leases: dict[int, ClientLease] = {}

    def __contains__(self, clientid: int) -> bool:
        return clientid in self._leases

    def get(self, clientid: int) -> ClientLease:
        """The client's lease record, created (as just renewed) on first use."""
        rec = self._leases.get(clientid)
        if rec is None:
            rec = self._leases[clientid] = ClientLease(clientid, self.clock())
        return rec

    def renew(self, clientid: int) -> None:
        self.get(clientid).last_renew = self.clock()

    def expired(self, clientid: int) -> bool:
        rec = self._leases.get(clientid)
        return rec is not None and self.clock() - rec.last_renew > self.lease_time

    def expired_for(self, clientid: int) -> float:
        """Seconds since the lease ended (<= 0 while it runs)."""
        rec = self._leases.get(clientid)
        if rec is None:
            return 0.0
        return self.clock() - rec.last_renew - self.lease_time

    def note_revoked(self, clientid: int, others: list[bytes], flag: SeqStatus) -> None:
        rec = self.get(clientid)
        rec.revoked.update(others)
        if others:
            rec.flags |= int(flag)

    def note_freed(self, clientid: int, other: bytes) -> None:
        rec = self._leases.get(clientid)
        if rec is not None:
            rec.revoked.discard(other)
            if not rec.revoked:
                rec.flags = 0

    def status_flags(self, clientid: int) -> int:
        """The revocation bits of sr_status_flags for this client's SEQUENCE."""
        rec = self._leases.get(clientid)
        return rec.flags if rec is not None else 0

    def forget(self, clientid: int) -> None:
        self._leases.pop(clientid, None)

    def expired_clients(self) -> list[tuple[float, int]]:
        """(seconds since expiry, clientid) of every expired client, longest expired first."""
        now = self.clock()
        out = [(now - r.last_renew - self.lease_time, r.clientid) for r in self._leases.values()
               if now - r.last_renew > self.lease_time]
        out.sort(reverse=True)
        return out
