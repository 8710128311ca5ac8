"""The recovery store interface and the separate cluster hooks.

The store keeps one record per client that holds (or held) state: written before the
client's first open, so a client that never opens is never waited for.  Records carry the boot epoch they were
written under; at start the server calls ``start_grace(new_epoch)``: every record of an
earlier epoch is a client that may reclaim (``reclaimable()``).  A client that comes back
is recorded again under the new epoch.  ``end_grace()`` drops the earlier-epoch records
that were not recorded again: those clients had their grace period and lost their right
to reclaim (RFC 8881 §8.4.3, the edge conditions: a client that missed one grace period
must not reclaim in the next one, since conflicting state may have been granted between).

If the server dies during grace, nothing was dropped: the next start offers the same
clients another grace period, which is safe because only reclaims were granted meanwhile.

Cluster coordination (several nodes serving one namespace) is a second, separate
interface, so a single server never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from securenfs.recovery.records import ClientRecord


@runtime_checkable
class RecoveryStore(Protocol):
    async def open(self) -> None:
        """Open or create the store; raises RecoveryError with the file/endpoint and the fix."""

    async def record_client(self, owner_id: bytes, principal: str | None) -> ClientRecord:
        """Record a client under the current epoch; durable when this returns.  Raises
        RecoveryUnavailable when the write could not be made durable."""

    async def remove_client(self, owner_id: bytes) -> None:
        """Forget a client (DESTROY_CLIENTID, or its state revoked after lease expiry)."""

    def reclaimable(self) -> frozenset[bytes]:
        """Owner ids recorded before this start: the only clients that may reclaim."""

    def reclaimable_records(self) -> Mapping[bytes, ClientRecord]:
        """The records behind ``reclaimable()`` (for the status view)."""

    async def start_grace(self, new_epoch: int) -> None:
        """Take the snapshot of earlier-epoch records; new records use ``new_epoch``."""

    async def end_grace(self) -> int:
        """Drop earlier-epoch records not recorded again; durable on return.  Returns how
        many were dropped."""

    async def close(self) -> None:
        """Flush and release the store (nothing is lost: every write was durable)."""


@runtime_checkable
class ClusterHooks(Protocol):
    """Cluster-wide grace for nodes serving one namespace (the etcd backend)."""

    node_id: str

    async def join(self) -> None:
        """Register this node as a live member (its membership expires if it dies)."""

    async def need_grace(self) -> None:
        """Put the whole cluster in grace until this node lifts its need."""

    async def lift_grace(self) -> None:
        """This node's clients have reclaimed or are gone: withdraw its need for grace."""

    async def cluster_in_grace(self) -> bool:
        """Whether any node still needs grace (every node then refuses new state)."""

    async def take_over(self, node_id: str) -> frozenset[bytes]:
        """Adopt the clients of a failed node: they become reclaimable here.  Returns their
        owner ids."""

    async def leave(self) -> None:
        """Withdraw membership on a clean stop."""
