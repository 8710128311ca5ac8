"""ID mapping: Kerberos principals and NFSv4 owner strings to POSIX ids and back.

Interface used by the server (all lookups are coroutines; blocking backend calls run in a
thread pool, and concurrent lookups of one key share one backend query)::

    from idmap import IdmapConfig, build_mapper, IdmapNotFound, IdmapUnavailable

    config = IdmapConfig.from_mapping(toml["idmap"])      # raises IdmapConfigError(.key, .fix)
    mapper = build_mapper(config)

    ident = await mapper.principal_to_identity("alice@EXAMPLE.COM")
        # Identity(uid, gid, groups, name, source, cache, reason): the credentials a
        # RPCSEC_GSS request runs with.  Foreign realms, instances, unknown users and
        # machine principals get a policy answer (anonymous by default) with a log line.
    m = await mapper.owner_to_uid("alice@example.com", allow_numeric=is_auth_sys)
    m = await mapper.group_to_gid("staff@example.com", allow_numeric=is_auth_sys)
        # Mapping(id, name, source, cache, reason)
    m = await mapper.uid_to_owner(1000)       # for GETATTR; never raises
    m = await mapper.gid_to_group(100)
    mapper.stats(); mapper.flush(); mapper.close()

Outcomes:
    a returned value     found (or a documented policy answer: source "anon"/"machine"/"numeric")
    IdmapNotFound        authoritative "no such name" or refused by policy -> NFS4ERR_BADOWNER
    IdmapUnavailable     no backend could answer, within idmap.outage_delay -> NFS4ERR_DELAY

``config.numeric.accept(kerberos=...)`` tells the server what to pass as
``allow_numeric`` (RFC 8881 §5.9: numeric owner strings from AUTH_SYS clients only, by
default).  :class:`SyncIdMapper` is a blocking facade for the CLI.
"""

from __future__ import annotations

from idmap.backends.base import Backend
from idmap.config import BackendKind, IdmapConfig, IdmapConfigError
from idmap.errors import BackendUnavailable, IdmapError, IdmapNotFound, IdmapUnavailable
from idmap.mapper import IdMapper, SyncIdMapper
from idmap.records import CacheState, GroupRec, Identity, Mapping, UserRec


def build_backends(config: IdmapConfig) -> list[Backend]:
    """The configured backends, in lookup order."""
    backends: list[Backend] = []
    for kind in config.backends:
        if kind is BackendKind.LDAP:
            from idmap.backends.ldap import LdapBackend

            assert config.ldap is not None
            backends.append(LdapBackend(config.ldap, max_connections=config.max_inflight))
        elif kind is BackendKind.STATIC:
            from idmap.backends.static import StaticBackend, StaticFileError

            assert config.static is not None
            try:
                backends.append(StaticBackend(config.static.path))
            except StaticFileError as exc:
                raise IdmapConfigError("idmap.static.path", str(exc),
                                       "fix the file (see docs/idmap.md, static backend)") from None
        else:
            from idmap.backends.nss import NssBackend

            backends.append(NssBackend())
    return backends


def build_mapper(config: IdmapConfig) -> IdMapper:
    """An :class:`IdMapper` over the configured backend chain."""
    return IdMapper(config, build_backends(config))


__all__ = [
    "Backend", "BackendUnavailable", "CacheState", "GroupRec", "IdMapper", "Identity",
    "IdmapConfig", "IdmapConfigError", "IdmapError", "IdmapNotFound", "IdmapUnavailable",
    "Mapping", "SyncIdMapper", "UserRec", "build_backends", "build_mapper",
]
