"""The acl and dacl attributes (RFC 8881 §6.2.1, §6.2.2) over POSIX ACLs.

Who-strings go through the owner mapper like owner and owner_group (RFC 8881 §5.9): a name
it does not know is NFS4ERR_BADOWNER, a directory that cannot answer NFS4ERR_DELAY.  An ACL
POSIX ACLs cannot hold without weakening it is NFS4ERR_ATTRNOTSUPP (NFS4ERR_INVAL when it is
not valid NFSv4 at all), with the ACE and the reason in the message the COMPOUND loop logs.
See :mod:`securenfs.acl.mapping` for the mapping itself.
"""

from __future__ import annotations

import stat as stat_mod
from typing import Any

from securenfs.acl.ace import SPECIAL_WHO, UNREPRESENTABLE_WHO, Ace, AceFlag, AclFlag, Who
from securenfs.acl.mapping import Unrepresentable, to_nfs4, to_posix
from securenfs.acl.posix import PosixAcl
from securenfs.nfs4.context import CompoundContext
from securenfs.nfs4.owners import OwnerMapper
from securenfs.nfs4.xdr4 import Nfsace4
from securenfs.proto.constants import Attr, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.vfs import acls as vfs_acls


async def aces_of(owners: OwnerMapper, mode: int, access: PosixAcl | None,
                  default: PosixAcl | None) -> list[Nfsace4]:
    """The acl attribute of a file with ``mode`` and these stored POSIX ACLs."""
    is_dir = stat_mod.S_ISDIR(mode)
    aces = to_nfs4(access if access is not None else PosixAcl.from_mode(mode), default, is_dir)
    names: dict[tuple[Who, int], bytes] = {}
    out: list[Nfsace4] = []
    for a in aces:
        if a.who == Who.USER or a.who == Who.NAMED_GROUP:
            key = (a.who, a.id)
            who = names.get(key)
            if who is None:
                text = await (owners.uid_to_owner(a.id) if a.who == Who.USER else owners.gid_to_group(a.id))
                who = names[key] = text.encode()
        else:
            who = a.who.value.encode()
        out.append(Nfsace4(a.type, a.flag, a.mask, who))
    return out


def requested(attrs: dict[int, Any]) -> list[Nfsace4] | None:
    """The ACEs a SETATTR or create asks for (acl or dacl), or None."""
    if Attr.ACL in attrs and Attr.DACL in attrs:
        raise Nfs4Error(Stat.INVAL, "acl and dacl in one request: set one of them")
    if Attr.DACL in attrs:
        flag, aces = attrs[Attr.DACL]
        if flag:
            raise Nfs4Error(Stat.ATTRNOTSUPP, f"dacl flags {flag:#x}: automatic inheritance "
                            f"({', '.join(f.name or '' for f in AclFlag)}) is not supported")
        return list(aces)
    if Attr.ACL in attrs:
        return list(attrs[Attr.ACL])
    return None


async def resolve(ctx: CompoundContext, aces: list[Nfsace4]) -> list[Ace]:
    """Who-strings -> ids through the owner mapper."""
    owners = ctx.svc.owners
    kerberos = ctx.cred.principal is not None
    ids: dict[tuple[bool, str], int] = {}
    out: list[Ace] = []
    for i, a in enumerate(aces):
        try:
            who = a.who.decode()
        except UnicodeDecodeError:
            raise Nfs4Error(Stat.BADCHAR, f"ACE {i}: the who-string is not UTF-8") from None
        special = SPECIAL_WHO.get(who)
        if special is not None:
            out.append(Ace(a.type, a.flag, a.access_mask, special))
            continue
        if who in UNREPRESENTABLE_WHO:
            raise Nfs4Error(Stat.ATTRNOTSUPP, f"ACE {i} ({who}): POSIX ACLs have no principal like {who}; "
                            "only OWNER@, GROUP@, EVERYONE@, users and groups")
        group = bool(a.flag & AceFlag.IDENTIFIER_GROUP)
        key = (group, who)
        ident = ids.get(key)
        if ident is None:
            found = await (owners.group_to_gid(who, kerberos=kerberos) if group
                           else owners.owner_to_uid(who, kerberos=kerberos))
            if found is None:
                raise Nfs4Error(Stat.BADOWNER, f"ACE {i}: {'group' if group else 'user'} {who!r} cannot be mapped")
            ident = ids[key] = found
        out.append(Ace(a.type, a.flag, a.access_mask, Who.NAMED_GROUP if group else Who.USER, ident))
    return out


def to_stored(aces: list[Ace], is_dir: bool) -> tuple[PosixAcl, PosixAcl | None]:
    try:
        return to_posix(aces, is_dir)
    except Unrepresentable as exc:
        raise Nfs4Error(Stat.INVAL if exc.malformed else Stat.ATTRNOTSUPP,
                        f"cannot be stored as a POSIX ACL: {exc}") from None


async def prepare(ctx: CompoundContext, aces: list[Nfsace4], is_dir: bool) -> tuple[PosixAcl, PosixAcl | None]:
    """The POSIX ACLs for ``aces`` (who-strings resolved, mapping checked), before anything
    is changed, so a refused ACL leaves the file as it was."""
    return to_stored(await resolve(ctx, aces), is_dir)


async def store(ctx: CompoundContext, fs: Any, fh: bytes, creds: Any, acls: tuple[PosixAcl, PosixAcl | None]) -> None:
    """Write the ACLs as the caller (the kernel allows only the owner); the kernel then sets
    the mode's permission bits from the access ACL (RFC 8881 §6.4.1.2)."""
    try:
        await ctx.run(vfs_acls.write, fs, fh, creds, acls[0], acls[1])
    except Nfs4Error as exc:
        if exc.status == Stat.NOTSUPP:
            raise Nfs4Error(Stat.ATTRNOTSUPP, exc.detail) from None
        raise
