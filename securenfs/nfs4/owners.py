"""Owner strings <-> ids (RFC 8881 §5.9).  The idmap package plugs in behind OwnerMapper;
until then :class:`NumericOwners` answers with decimal ids ("1000"), which Linux clients
accept when their idmapd is in numeric mode (the default for AUTH_SYS)."""

from __future__ import annotations

from typing import Protocol


class OwnerMapper(Protocol):
    async def uid_to_owner(self, uid: int) -> str: ...

    async def gid_to_group(self, gid: int) -> str: ...

    async def owner_to_uid(self, owner: str) -> int | None: ...

    async def group_to_gid(self, group: str) -> int | None: ...


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

    async def owner_to_uid(self, owner: str) -> int | None:
        return _numeric(owner)

    async def group_to_gid(self, group: str) -> int | None:
        return _numeric(group)
