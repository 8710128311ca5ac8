"""The preflight check catalogue; importing this package registers every check."""

from preflight.checks import clock, dns, exports, hosts, idmap, kerberos, keytab

ALL_MODULES = (clock, dns, hosts, kerberos, keytab, idmap, exports)
