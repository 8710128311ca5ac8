"""Stable client records, the grace period, and the etcd cluster backend (RFC 8881 §8.4)."""

from securenfs.recovery.errors import RecoveryError, RecoveryUnavailable
from securenfs.recovery.grace import Decision, GraceManager, GraceState, format_status
from securenfs.recovery.records import ClientRecord
from securenfs.recovery.service import Recovery
from securenfs.recovery.store import ClusterHooks, RecoveryStore

__all__ = ["ClientRecord", "ClusterHooks", "Decision", "GraceManager", "GraceState", "Recovery",
           "RecoveryError", "RecoveryStore", "RecoveryUnavailable", "format_status"]
