"""NFSv4 ACL <-> POSIX ACL, the mapping the Linux NFS server uses.

POSIX -> NFSv4 (:func:`to_nfs4`) is exact: for every requester and every one of r, w, x,
evaluating the NFSv4 ACEs in order (RFC 8881 §6.2.1) gives the answer the kernel gives for
the POSIX ACL.  Per POSIX ACL (access, then the default one of a directory with
FILE_INHERIT|DIRECTORY_INHERIT|INHERIT_ONLY), in this order:

* OWNER@: a DENY of what the owner lacks but anyone else has, then an ALLOW of its bits;
* each named user: a DENY of what it lacks (after the mask) but a group class or others
  have, then an ALLOW;
* ALLOWs for GROUP@ and each named group (after the mask), then DENYs of what each lacks
  but others have (ALLOWs first: a user in several groups gets the union, as in POSIX);
* EVERYONE@: an ALLOW of the other bits.

NFSv4 -> POSIX (:func:`to_posix`) walks the ACEs keeping what has been allowed and denied
so far for each POSIX class (the owner, each named user, the owning group, each named
group, others), where an EVERYONE@ ACE reaches every class and a DENY for a group also
reaches everyone who may be in it.  A POSIX permission is granted to a class only when all
the NFSv4 bits it stands for are allowed: r = READ_DATA, w = WRITE_DATA|APPEND_DATA (and
DELETE_CHILD on a directory), x = EXECUTE.  The result therefore never grants more than the
NFSv4 ACL; where the ACL asks for something POSIX cannot enforce (a DENY of a permission
POSIX always grants, AUDIT/ALARM ACEs, inheritance POSIX cannot express, special
principals other than OWNER@/GROUP@/EVERYONE@) it is refused with :class:`Unrepresentable`,
which names the ACE and the reason.  ALLOW bits POSIX has no place for (DELETE,
WRITE_OWNER, named attributes, WRITE_ACL for others than the owner) are not kept: the ACL
read back shows what is enforced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from securenfs.acl.ace import (
    ACE_MASK_ALL,
    Ace,
    AceFlag,
    AceMask,
    AceType,
    AclSupport,
    Who,
    flag_names,
    mask_names,
)
from securenfs.acl.posix import EXECUTE, READ, WRITE, PosixAcl, Tag

#: aclsupport (RFC 8881 §6.2.1.2): the ACE types POSIX ACLs can hold.
ACL_SUPPORT: Final = int(AclSupport.ALLOW | AclSupport.DENY)
R_BITS: Final = int(AceMask.READ_DATA)
W_BITS: Final = int(AceMask.WRITE_DATA | AceMask.APPEND_DATA)
X_BITS: Final = int(AceMask.EXECUTE)
#: What everyone may do under POSIX whatever the ACL says.
ANYONE_BITS: Final = int(AceMask.READ_ATTRIBUTES | AceMask.READ_ACL | AceMask.SYNCHRONIZE)
#: What the owner may always do under POSIX (chmod, utimes, setfacl).
OWNER_BITS: Final = int(AceMask.WRITE_ATTRIBUTES | AceMask.WRITE_ACL)
INHERIT: Final = int(AceFlag.FILE_INHERIT | AceFlag.DIRECTORY_INHERIT)
SUPPORTED_FLAGS: Final = INHERIT | AceFlag.INHERIT_ONLY | AceFlag.IDENTIFIER_GROUP
#: Bits a DENY cannot take away from anyone: POSIX grants them to all (attributes, the ACL)
#: or decides them elsewhere (deletion by the directory, ownership by privilege) or has no
#: such permission at all (named attributes, retention).
UNDENIABLE: Final = int(ANYONE_BITS | AceMask.DELETE | AceMask.WRITE_OWNER | AceMask.READ_NAMED_ATTRS
                        | AceMask.WRITE_NAMED_ATTRS | AceMask.WRITE_RETENTION | AceMask.WRITE_RETENTION_HOLD)


class Unrepresentable(ValueError):
    """An NFSv4 ACL POSIX ACLs cannot hold without weakening it.  ``malformed`` is set when
    the ACE is not even valid NFSv4 (undefined type, flag or mask bits)."""

    def __init__(self, index: int, ace: Ace, reason: str, *, malformed: bool = False):
        super().__init__(f"ACE {index} ({ace.describe()}): {reason}")
        self.index = index
        self.ace = ace
        self.reason = reason
        self.malformed = malformed


def allow_mask(perm: int, is_dir: bool, *, owner: bool = False) -> int:
    """The ACE mask an ALLOW for POSIX permission bits ``perm`` carries."""
    mask = ANYONE_BITS | (OWNER_BITS if owner else 0)
    return mask | deny_mask(perm, is_dir)


def deny_mask(perm: int, is_dir: bool) -> int:
    mask = 0
    if perm & READ:
        mask |= R_BITS
    if perm & WRITE:
        mask |= W_BITS | (AceMask.DELETE_CHILD if is_dir else 0)
    if perm & EXECUTE:
        mask |= X_BITS
    return mask


def perm_from_mask(mask: int, is_dir: bool) -> int:
    """The POSIX permission bits whose NFSv4 bits are all in ``mask``."""
    w = W_BITS | (AceMask.DELETE_CHILD if is_dir else 0)
    return ((READ if mask & R_BITS == R_BITS else 0) | (WRITE if mask & w == w else 0)
            | (EXECUTE if mask & X_BITS == X_BITS else 0))


# -- POSIX -> NFSv4 ------------------------------------------------------------------------------

def to_nfs4(access: PosixAcl, default: PosixAcl | None, is_dir: bool) -> list[Ace]:
    """The NFSv4 ACL for a file's access ACL (:meth:`PosixAcl.from_mode` when it has none)
    and, for a directory, its default ACL."""
    aces = _to_nfs4_one(access, is_dir, 0)
    if default is not None and is_dir:
        aces += _to_nfs4_one(default, is_dir, INHERIT | AceFlag.INHERIT_ONLY)
    return aces


def _to_nfs4_one(acl: PosixAcl, is_dir: bool, eflag: int) -> list[Ace]:
    m = 7 if acl.mask is None else acl.mask
    users = [(i, p & m) for i, p in acl.named(Tag.USER)]
    groups = [(i, p & m) for i, p in acl.named(Tag.GROUP)]
    group = acl.group & m
    other = acl.other
    users_any = _union(p for _, p in users)
    groups_any = _union(p for _, p in groups)
    out: list[Ace] = []

    def add(kind: AceType, perm: int, who: Who, ident: int = -1, *, owner: bool = False) -> None:
        mask = allow_mask(perm, is_dir, owner=owner) if kind == AceType.ALLOW else deny_mask(perm, is_dir)
        flag = eflag | (AceFlag.IDENTIFIER_GROUP if who == Who.NAMED_GROUP else 0)
        out.append(Ace(kind, flag, mask, who, ident))

    deny = ~acl.owner & (users_any | group | groups_any | other) & 7
    if deny:
        add(AceType.DENY, deny, Who.OWNER)
    add(AceType.ALLOW, acl.owner, Who.OWNER, owner=True)
    for uid, p in users:
        deny = ~p & (groups_any | group | other) & 7
        if deny:
            add(AceType.DENY, deny, Who.USER, uid)
        add(AceType.ALLOW, p, Who.USER, uid)
    add(AceType.ALLOW, group, Who.GROUP)
    for gid, p in groups:
        add(AceType.ALLOW, p, Who.NAMED_GROUP, gid)
    deny = ~group & other & 7
    if deny:
        add(AceType.DENY, deny, Who.GROUP)
    for gid, p in groups:
        deny = ~p & other & 7
        if deny:
            add(AceType.DENY, deny, Who.NAMED_GROUP, gid)
    add(AceType.ALLOW, other, Who.EVERYONE)
    return out


def _union(perms: Iterable[int]) -> int:
    out = 0
    for p in perms:
        out |= p
    return out


# -- NFSv4 -> POSIX ------------------------------------------------------------------------------

@dataclass(slots=True)
class _Bits:
    """What has been allowed and denied so far to one POSIX class; the first ACE that
    mentions a bit decides it (RFC 8881 §6.2.1)."""

    allow: int = 0
    deny: int = 0

    def allow_bits(self, mask: int) -> None:
        self.allow |= mask & ~self.deny

    def deny_bits(self, mask: int) -> int:
        new = mask & ~self.allow & ~self.deny
        self.deny |= new
        return new


@dataclass(slots=True)
class _State:
    owner: _Bits = field(default_factory=_Bits)
    group: _Bits = field(default_factory=_Bits)
    other: _Bits = field(default_factory=_Bits)
    #: What every named user or group not yet seen starts with.
    everyone: _Bits = field(default_factory=_Bits)
    users: dict[int, _Bits] = field(default_factory=dict)
    groups: dict[int, _Bits] = field(default_factory=dict)
    empty: bool = True

    def _named(self, table: dict[int, _Bits], ident: int) -> _Bits:
        b = table.get(ident)
        if b is None:
            b = table[ident] = _Bits(self.everyone.allow, self.everyone.deny)
        return b

    def process(self, index: int, ace: Ace) -> None:
        self.empty = False
        mask = ace.mask
        if ace.type == AceType.ALLOW:
            for b in self._allowed(ace):
                b.allow_bits(mask)
            return
        # A DENY reaches its class and everyone who may also be in it: a named user may be
        # the owner; a group's members may be the owner, a named user, in another group.
        target = self._target(ace)
        denied = target.deny_bits(mask)
        reach = target.deny if ace.who in (Who.USER, Who.GROUP, Who.NAMED_GROUP) else mask
        owner_denied = 0
        if ace.who != Who.OWNER:
            owner_denied = self.owner.deny_bits(reach)
            denied |= owner_denied
        if ace.who in (Who.GROUP, Who.NAMED_GROUP, Who.EVERYONE):
            affected = [self.everyone, *self.users.values(), *self.groups.values()]
            if ace.who != Who.GROUP:
                affected.append(self.group)
            if ace.who == Who.EVERYONE:
                affected.append(self.other)
            for b in affected:
                if b is not target:
                    denied |= b.deny_bits(reach)
        if ace.who == Who.OWNER:
            owner_denied = denied
        if denied & UNDENIABLE:
            raise Unrepresentable(index, ace, f"POSIX ACLs cannot deny {mask_names(denied & UNDENIABLE)}: "
                                  "every user may read attributes and ACLs, deleting is decided by the "
                                  "directory, and there are no named-attribute or retention permissions")
        if owner_denied & OWNER_BITS:
            raise Unrepresentable(index, ace, f"this DENY of {mask_names(owner_denied & OWNER_BITS)} "
                                  "reaches the file's owner, who may always change the mode, times and "
                                  "ACL of its files under POSIX")

    def _target(self, ace: Ace) -> _Bits:
        if ace.who == Who.OWNER:
            return self.owner
        if ace.who == Who.GROUP:
            return self.group
        if ace.who == Who.USER:
            return self._named(self.users, ace.id)
        if ace.who == Who.NAMED_GROUP:
            return self._named(self.groups, ace.id)
        return self.everyone

    def _allowed(self, ace: Ace) -> list[_Bits]:
        if ace.who == Who.EVERYONE:
            return [self.owner, self.group, self.other, self.everyone, *self.users.values(),
                    *self.groups.values()]
        return [self._target(ace)]

    def to_acl(self, is_dir: bool) -> PosixAcl:
        def perm(b: _Bits) -> int:
            return perm_from_mask(b.allow, is_dir)

        users = [(uid, perm(b)) for uid, b in self.users.items()]
        groups = [(gid, perm(b)) for gid, b in self.groups.items()]
        mask = None
        if users or groups:
            union = self.group.allow
            for b in (*self.users.values(), *self.groups.values()):
                union |= b.allow
            mask = perm_from_mask(union, is_dir)
        return PosixAcl.build(perm(self.owner), perm(self.group), perm(self.other), users, groups, mask)


def _check(index: int, ace: Ace, is_dir: bool) -> None:
    if ace.type not in (AceType.ALLOW, AceType.DENY):
        if ace.type in (AceType.AUDIT, AceType.ALARM):
            raise Unrepresentable(index, ace, "AUDIT and ALARM ACEs are not supported (aclsupport: "
                                  "ALLOW and DENY only)")
        raise Unrepresentable(index, ace, f"undefined ACE type {ace.type}", malformed=True)
    if ace.mask & ~ACE_MASK_ALL:
        raise Unrepresentable(index, ace, f"undefined access mask bits {ace.mask & ~ACE_MASK_ALL:#x}",
                              malformed=True)
    if ace.flag & ~0xFF:
        raise Unrepresentable(index, ace, f"undefined flag bits {ace.flag & ~0xFF:#x}", malformed=True)
    if ace.flag & ~SUPPORTED_FLAGS:
        raise Unrepresentable(index, ace, f"flags {flag_names(ace.flag & ~SUPPORTED_FLAGS)} have no "
                              "POSIX ACL equivalent")
    inherit = ace.flag & INHERIT
    if inherit and not is_dir:
        raise Unrepresentable(index, ace, "inheritance flags on an object that is not a directory")
    if inherit and inherit != INHERIT:
        raise Unrepresentable(index, ace, "a POSIX default ACL is inherited by files and directories "
                              "alike: set FILE_INHERIT and DIRECTORY_INHERIT together")
    if ace.flag & AceFlag.INHERIT_ONLY and not inherit:
        raise Unrepresentable(index, ace, "INHERIT_ONLY without FILE_INHERIT|DIRECTORY_INHERIT "
                              "applies to nothing")


def to_posix(aces: Sequence[Ace], is_dir: bool) -> tuple[PosixAcl, PosixAcl | None]:
    """The access ACL and (directories only) the default ACL for ``aces``; the default is
    None when no ACE is inheritable (a directory's default ACL is then removed).  Raises
    :class:`Unrepresentable` for the first ACE POSIX ACLs cannot hold."""
    effective = _State()
    inheritable = _State()
    for i, ace in enumerate(aces):
        _check(i, ace, is_dir)
        if not ace.flag & INHERIT:
            effective.process(i, ace)
            continue
        inheritable.process(i, ace)
        if not ace.flag & AceFlag.INHERIT_ONLY:
            effective.process(i, ace)
    default = None if inheritable.empty else inheritable.to_acl(is_dir)
    return effective.to_acl(is_dir), default
