"""Errors of the recovery store.

Two kinds, because the server must treat them differently:

* ``RecoveryError`` at start: the store cannot be opened (corrupt, unwritable, unreachable).
  The server refuses to start; serving without stable client records would let clients
  reclaim state they never had, or lose state they did have (RFC 8881 §8.4.2).
* ``RecoveryUnavailable`` while running: one write could not be made durable (etcd lost its
  quorum, the disk filled up).  The client gets no open yet; the protocol layer answers
  NFS4ERR_DELAY so the client retries later.
"""

from __future__ import annotations


class RecoveryError(Exception):
    """The recovery store is unusable; the message names the file or endpoint and the fix."""


class RecoveryUnavailable(RecoveryError):
    """A single operation could not be made durable; retrying later may succeed."""
