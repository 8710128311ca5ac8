"""Owner strings <-> ids (RFC 8881 §5.9) and Kerberos principals -> credentials.

Two implementations sit behind :class:`OwnerMapper`:

* :class:`NumericOwners` when no ``[idmap]`` table is configured: decimal ids both ways
  ("1000"), which Linux clients accept in numeric mode; Kerberos callers run as the export's
  anonymous id.
* :class:`IdmapOwners` over the ``idmap`` package (LDAP, static file, nsswitch): names both
  ways, principals mapped to uid, primary gid and supplementary gids.  A name the directory
  does not know is NFS4ERR_BADOWNER; a directory that cannot answer is NFS4ERR_DELAY (the
  client retries) until the outage window of the idmap configuration ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from securenfs.proto.constants import Stat
from securenfs.proto.errors import Nfs4Error

if TYPE_CHECKING:
    from idmap import IdmapConfig, IdMapper


class OwnerMapper(Protocol):
    async def uid_to_owner(self, uid: int) -> str: ...

    async def gid_to_group(self, gid: int) -> str: ...

    async def owner_to_uid(self, owner: str, *, kerberos: bool = False) -> int | None: ...

    async def group_to_gid(self, group: str, *, kerberos: bool = False) -> int | None: ...

    async def principal_identity(self, principal: str) -> tuple[int, int, tuple[int, ...]] | None:
        """(uid, gid, supplementary gids) for a Kerberos principal; None: the anonymous id."""
        ...


def _numeric(text: str) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= 10:
        v = int(text)
        return v if v <= 0xFFFFFFFE else None
    return None


class NumericOwners:
    """Decimal ids both ways; names that are not numbers map to None (NFS4ERR_BADOWNER)."""

    async def uid_to_owner(self, uid: int) -> str:
        return str(uid)

    async def gid_to_group(self, gid: int) -> str:
        return str(gid)

    async def owner_to_uid(self, owner: str, *, kerberos: bool = False) -> int | None:
        return _numeric(owner)

    async def group_to_gid(self, group: str, *, kerberos: bool = False) -> int | None:
        return _numeric(group)

    async def principal_identity(self, principal: str) -> tuple[int, int, tuple[int, ...]] | None:
        return None


class IdmapOwners:
    """The ``idmap`` package behind :class:`OwnerMapper`.

    An idmap exception names its subject itself (``str(exc)`` is "principal bob@R: why");
    the NFS4ERR_DELAY detail names the subject once and adds only ``exc.reason``.
    """

    def __init__(self, mapper: IdMapper, config: IdmapConfig):
        self.mapper = mapper
        self.config = config

    async def uid_to_owner(self, uid: int) -> str:
        return (await self.mapper.uid_to_owner(uid)).name

    async def gid_to_group(self, gid: int) -> str:
        return (await self.mapper.gid_to_group(gid)).name

    async def owner_to_uid(self, owner: str, *, kerberos: bool = False) -> int | None:
        from idmap import IdmapNotFound, IdmapUnavailable

        try:
            m = await self.mapper.owner_to_uid(owner, allow_numeric=self.config.numeric.accept(kerberos=kerberos))
        except IdmapNotFound:
            return None
        except IdmapUnavailable as exc:
            raise Nfs4Error(Stat.DELAY, f"owner {owner!r}: {exc.reason}") from None
        return m.id

    async def group_to_gid(self, group: str, *, kerberos: bool = False) -> int | None:
        from idmap import IdmapNotFound, IdmapUnavailable

        try:
            m = await self.mapper.group_to_gid(group, allow_numeric=self.config.numeric.accept(kerberos=kerberos))
        except IdmapNotFound:
            return None
        except IdmapUnavailable as exc:
            raise Nfs4Error(Stat.DELAY, f"group {group!r}: {exc.reason}") from None
        return m.id

    async def principal_identity(self, principal: str) -> tuple[int, int, tuple[int, ...]] | None:
        from idmap import IdmapNotFound, IdmapUnavailable

        try:
            ident = await self.mapper.principal_to_identity(principal)
        except IdmapUnavailable as exc:
            raise Nfs4Error(Stat.DELAY, f"principal {principal}: {exc.reason}") from None
        except IdmapNotFound:
            return None
        return ident.uid, ident.gid, tuple(ident.groups)

    def close(self) -> None:
        self.mapper.close()


def build_owner_mapper(idmap_table: dict[str, object]) -> OwnerMapper:
    """From the raw ``[idmap]`` table: numeric when empty, the idmap package otherwise.

    Raises ``idmap.IdmapConfigError`` for a bad table.
    """
    if not idmap_table:
        return NumericOwners()
    from idmap import IdmapConfig, build_mapper

    config = IdmapConfig.from_mapping(dict(idmap_table))
    return IdmapOwners(build_mapper(config), config)
