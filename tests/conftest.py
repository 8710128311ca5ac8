"""Fixtures shared by the whole suite: real parts on loopback, started once and torn down.

Each fixture lives in ``tests/support/`` beside the helpers it wraps (bench/ uses the same
helpers); this file only makes them visible to every test module, so no module imports a
fixture by name.
"""

from tests.support.dnsserver import dns_server
from tests.support.etcd import etcd_cluster
from tests.support.gss import gss_server
from tests.support.gsscrypto import enctype_realm
from tests.support.kdc import kdc_realm
from tests.support.nfsserver import nfs_server, state_server
from tests.support.ntpserver import ntp_server
from tests.support.rpcserver import rpc_server
from tests.support.slapd import slapd_directory, small_directory
from tests.support.wirecheck import suite_wire_check

__all__ = [
    "dns_server", "enctype_realm", "etcd_cluster", "gss_server", "kdc_realm", "nfs_server",
    "ntp_server", "rpc_server", "slapd_directory", "small_directory", "state_server", "suite_wire_check",
]
