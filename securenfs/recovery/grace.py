"""The grace period after a start (RFC 8881 §8.4.2, §8.4.3, §18.51): pure logic over a clock.

Two questions are answered separately, because in a cluster they differ:

* may a client *reclaim* here?  Only while this node's own grace period runs, only a client
  recorded before the start, and only until that client sent its global RECLAIM_COMPLETE.
* must *new* state be refused?  Whenever this node is in grace, or any node of the cluster
  is (one namespace: a lock granted on one node can conflict with a reclaim on another).

This node's grace ends when the timer runs out, or earlier as soon as every recorded client
has sent RECLAIM_COMPLETE or is known to be gone (DESTROY_CLIENTID, evicted).  Ending takes
two steps, in this order: ``due()`` says the condition holds; the caller drops the records of
clients that did not come back on stable storage (``RecoveryStore.end_grace``) and only then
calls ``finish()``, which allows new state.  If the server dies between the two steps, the
clients that did not reclaim stay excluded and nobody got conflicting state.

While reclaims keep arriving near the deadline, the deadline moves by ``extend_step`` each
time, up to ``max_extension`` in total: a client that renews only once per lease may find
out about the restart late (the Linux server does the same).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from securenfs.proto.constants import Stat
from securenfs.recovery.records import owner_label

log = logging.getLogger("securenfs.recovery")

#: Below this many seconds clients may not manage to reclaim (seed 004, point 5).
MIN_SAFE_GRACE = 30


class GraceState(enum.Enum):
    IN_GRACE = "in_grace"
    NORMAL = "normal"


class Decision(enum.IntEnum):
    """What the protocol layer answers; the values are the nfsstat4 codes."""

    OK = 0
    GRACE = Stat.GRACE
    NO_GRACE = Stat.NO_GRACE
    RECLAIM_BAD = Stat.RECLAIM_BAD
    COMPLETE_ALREADY = Stat.COMPLETE_ALREADY


class EndReason(enum.Enum):
    ALL_RECLAIMED = "every recorded client reclaimed or is gone"
    NO_CLIENTS = "no client was recorded before the start"
    TIMER = "grace time elapsed"


def grace_warnings(grace_time: float, lease_time: float) -> list[str]:
    """Configuration warnings for the grace period (the server logs them at start)."""
    out = []
    if grace_time < MIN_SAFE_GRACE:
        out.append(f"grace period {grace_time:g} s is below {MIN_SAFE_GRACE} s: clients that notice "
                   "the restart late may lose their locks")
    if grace_time < lease_time:
        out.append(f"grace period {grace_time:g} s is shorter than the lease ({lease_time:g} s); "
                   "RFC 8881 §8.4.2 expects at least one lease period")
    return out


class GraceManager:
    def __init__(self, grace_time: float, *, clock: Callable[[], float] = time.monotonic,
                 extend_step: float = 1.0, max_extension: float | None = None) -> None:
        if grace_time <= 0:
            raise ValueError("grace_time must be positive")
        self.grace_time = float(grace_time)
        self.clock = clock
        self.extend_step = extend_step
        #: Default: one more grace period at most.
        self.max_extension = self.grace_time if max_extension is None else max_extension
        self.state = GraceState.NORMAL
        self._started = 0.0
        self._deadline = 0.0
        self._base_deadline = 0.0
        self._last_reclaim: float | None = None
        self._expected: dict[bytes, str] = {}
        self._reclaimed: set[bytes] = set()
        self._gone: set[bytes] = set()
        self._one_fs: dict[bytes, set[Any]] = {}
        self._cluster_in_grace = False
        self._end_reason: EndReason | None = None
        self._ended_at: float | None = None
        self._reclaims = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, expected: Iterable[bytes], labels: Mapping[bytes, str] | None = None) -> None:
        """Begin grace (every start does, RFC 8881 §8.4.2.1) expecting these clients."""
        now = self.clock()
        self.state = GraceState.IN_GRACE
        self._started = now
        self._deadline = self._base_deadline = now + self.grace_time
        self._expected = {o: (labels or {}).get(o, owner_label(o)) for o in expected}
        self._reclaimed.clear()
        self._gone.clear()
        self._one_fs.clear()
        self._end_reason = None
        self._ended_at = None
        self._last_reclaim = None
        self._reclaims = 0
        log.info("grace period started: %.0f s, %d client(s) may reclaim", self.grace_time, len(self._expected))

    def add_expected(self, owners: Iterable[bytes], labels: Mapping[bytes, str] | None = None) -> None:
        """More clients may reclaim (taking over a failed node's clients): grace restarts its
        timer so they get a whole grace period."""
        new = {o: (labels or {}).get(o, owner_label(o)) for o in owners if o not in self._expected}
        if self.state is GraceState.NORMAL:
            self.start(new.keys(), new)
            return
        self._expected.update(new)
        now = self.clock()
        self._deadline = max(self._deadline, now + self.grace_time)
        self._base_deadline = max(self._base_deadline, now + self.grace_time)
        self._end_reason = None
        log.info("grace period: %d more client(s) may reclaim; ends in %.0f s at the latest",
                 len(new), self._deadline - now)

    def due(self) -> bool:
        """Whether this node's grace may end now (call ``finish`` once the store is updated)."""
        if self.state is not GraceState.IN_GRACE:
            return False
        if self._end_reason is not None:
            return True
        if all(o in self._reclaimed or o in self._gone for o in self._expected):
            self._end_reason = EndReason.ALL_RECLAIMED if self._expected else EndReason.NO_CLIENTS
            return True
        now = self.clock()
        if now < self._deadline:
            return False
        # knfsd-style extension: someone reclaimed during the last step before the deadline.
        if (self._last_reclaim is not None and self._last_reclaim >= self._deadline - self.extend_step
                and self._deadline + self.extend_step <= self._base_deadline + self.max_extension):
            self._deadline = max(self._deadline, now) + self.extend_step
            log.info("grace period extended by %.0f s: clients are still reclaiming", self.extend_step)
            return False
        self._end_reason = EndReason.TIMER
        return True

    def finish(self) -> None:
        """End this node's grace: reclaims now get NO_GRACE; new state is allowed unless the
        cluster is still in grace."""
        if self.state is GraceState.NORMAL:
            return
        if self._end_reason is None:
            self._end_reason = EndReason.TIMER
        self.state = GraceState.NORMAL
        self._ended_at = self.clock()
        missing = self.missing()
        log.info("grace period ended after %.1f s (%s); %d reclaim(s)%s",
                 self._ended_at - self._started, self._end_reason.value, self._reclaims,
                 f"; clients that did not come back: {', '.join(missing.values())}" if missing else "")

    def set_cluster_grace(self, in_grace: bool) -> None:
        if in_grace != self._cluster_in_grace:
            log.info("cluster %s grace", "entered" if in_grace else "left")
        self._cluster_in_grace = in_grace

    # -- queries -------------------------------------------------------------------------------
    @property
    def in_grace(self) -> bool:
        """This node's grace (reclaims possible)."""
        return self.state is GraceState.IN_GRACE

    @property
    def enforcing(self) -> bool:
        """Whether new state must be refused with NFS4ERR_GRACE."""
        return self.state is GraceState.IN_GRACE or self._cluster_in_grace

    def seconds_left(self) -> float | None:
        if self.state is not GraceState.IN_GRACE:
            return None
        return max(0.0, self._deadline - self.clock())

    def missing(self) -> dict[bytes, str]:
        return {o: lab for o, lab in self._expected.items() if o not in self._reclaimed and o not in self._gone}

    def may_reclaim(self, owner_id: bytes) -> bool:
        return owner_id in self._expected

    # -- decisions -----------------------------------------------------------------------------
    def check_reclaim(self, owner_id: bytes, reclaim_complete_sent: bool) -> Decision:
        """OPEN CLAIM_PREVIOUS, LOCK reclaim=true (and other reclaim-type requests)."""
        if self.state is not GraceState.IN_GRACE:
            return Decision.NO_GRACE  # RFC 8881 §8.4.2.1: reclaims only during grace
        if reclaim_complete_sent:
            return Decision.NO_GRACE  # RFC 8881 §18.51.3: no reclaims after RECLAIM_COMPLETE
        if owner_id not in self._expected or owner_id in self._gone:
            # Not recorded before the restart: the server cannot vouch that the client held
            # this state (the Linux server answers the same).
            return Decision.RECLAIM_BAD
        return Decision.OK

    def note_reclaim(self, owner_id: bytes) -> None:
        """A reclaim succeeded (feeds the deadline extension)."""
        self._last_reclaim = self.clock()
        self._reclaims += 1

    def check_new_state(self, reclaim_complete_sent: bool = True) -> Decision:
        """Non-reclaim OPEN, LOCK, and other ops that create locking state.  During grace they
        could take what a recorded client is about to reclaim (RFC 8881 §8.4.2.1).  A client
        that has not sent its RECLAIM_COMPLETE gets GRACE even so (RFC 8881 §18.51.3)."""
        if self.enforcing or not reclaim_complete_sent:
            return Decision.GRACE
        return Decision.OK

    def check_io(self, special_stateid: bool) -> Decision:
        """READ, WRITE, SETATTR of size.  RFC 8881 §8.4.2.1 allows I/O during grace when no
        conflict with a reclaim is possible: a regular stateid was itself obtained by a reclaim
        in this grace period (no other way to get one), so its I/O cannot conflict.  The
        anonymous and bypass stateids carry no lock, so they wait for grace to end."""
        if special_stateid and self.enforcing:
            return Decision.GRACE
        return Decision.OK

    def reclaim_complete(self, owner_id: bytes, one_fs: bool = False, fs: Any = None) -> Decision:
        """RECLAIM_COMPLETE (RFC 8881 §18.51).  A global one counts towards the early end of
        grace; ``rca_one_fs`` only notes that file system (migration), it does not end the
        client's reclaim.  The caller keeps the per-client-id "already sent" flag (a client
        that reboots gets a new client id and must send it again)."""
        if one_fs:
            done = self._one_fs.setdefault(owner_id, set())
            if fs in done:
                return Decision.COMPLETE_ALREADY
            done.add(fs)
            return Decision.OK
        self._reclaimed.add(owner_id)
        return Decision.OK

    def client_gone(self, owner_id: bytes) -> None:
        """The client will not reclaim (DESTROY_CLIENTID, evicted by an operator)."""
        self._gone.add(owner_id)

    # -- admin view ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """For ``securenfs status``: JSON-ready."""
        missing = self.missing()
        expected = len(self._expected)
        left = self.seconds_left()
        return {
            "state": "in_grace" if self.enforcing else "normal",
            "local_grace": self.state.value,
            "cluster_grace": self._cluster_in_grace,
            "seconds_left": None if left is None else round(left, 1),
            "grace_time": self.grace_time,
            "clients_expected": expected,
            "clients_reclaimed": len([o for o in self._expected if o in self._reclaimed]),
            "clients_gone": len([o for o in self._expected if o in self._gone and o not in self._reclaimed]),
            "clients_missing": sorted(missing.values()),
            "reclaims": self._reclaims,
            "ended": None if self._end_reason is None or self.state is GraceState.IN_GRACE
            else self._end_reason.value,
        }


def format_status(st: Mapping[str, Any]) -> str:
    """The human view of ``GraceManager.status()`` (and of the service's status)."""
    lines = []
    if st["state"] == "in_grace":
        if st["local_grace"] == "in_grace":
            lines.append(f"grace: IN GRACE, {st['seconds_left']:.0f} s left at most")
        else:
            lines.append("grace: IN GRACE (another cluster node is still recovering)")
    else:
        lines.append("grace: normal" + (f" (grace ended: {st['ended']})" if st.get("ended") else ""))
    lines.append(f"clients recorded before the start: {st['clients_expected']}, reclaimed: "
                 f"{st['clients_reclaimed']}, gone: {st['clients_gone']}, still to reclaim: "
                 f"{len(st['clients_missing'])}")
    for name in st["clients_missing"]:
        lines.append(f"  waiting for: {name}")
    return "\n".join(lines)
