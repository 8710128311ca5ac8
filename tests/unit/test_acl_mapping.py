"""NFSv4 ACL <-> POSIX ACL mapping and the POSIX ACL xattr format, checked against models.

The models are written from the texts, not from the mapping: NFSv4 evaluation is RFC 8881
§6.2.1 ("the first ACE that matches the requester and mentions a bit decides it; a bit no
ACE mentions is denied"), POSIX evaluation is acl(5)'s access check algorithm (owner entry,
else a named user entry masked, else any matching group entry masked, else other).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securenfs.acl.ace import Ace, AceFlag, AceMask, AceType, Who
from securenfs.acl.mapping import Unrepresentable, to_nfs4, to_posix
from securenfs.acl.posix import (
    MAX_ENTRIES,
    UNDEFINED_ID,
    Entry,
    PosixAcl,
    PosixAclError,
    Tag,
    decode,
    encode,
)

OWNER_UID, OWNER_GID = 10, 20
IDS = (1, 2, 3)
INHERIT = AceFlag.FILE_INHERIT | AceFlag.DIRECTORY_INHERIT


# -- models ---------------------------------------------------------------------------------------

def posix_grants(acl: PosixAcl, uid: int, gids: frozenset[int], want: int) -> bool:
    """acl(5) ACCESS CHECK ALGORITHM for one requested permission set ``want``."""
    mask = 7 if acl.mask is None else acl.mask
    if uid == OWNER_UID:
        return acl.owner & want == want
    for i, p in acl.named(Tag.USER):
        if i == uid:
            return p & mask & want == want
    matched = False
    if OWNER_GID in gids:
        matched = True
        if acl.group & mask & want == want:
            return True
    for i, p in acl.named(Tag.GROUP):
        if i in gids:
            matched = True
            if p & mask & want == want:
                return True
    if matched:
        return False
    return acl.other & want == want


def nfs4_grants(aces: list[Ace], uid: int, gids: frozenset[int], bits: int) -> bool:
    """RFC 8881 §6.2.1: ACEs in order; INHERIT_ONLY ACEs do not apply to the object."""
    undecided = bits
    for ace in aces:
        if ace.flag & AceFlag.INHERIT_ONLY:
            continue
        if ace.who == Who.OWNER:
            hit = uid == OWNER_UID
        elif ace.who == Who.GROUP:
            hit = OWNER_GID in gids
        elif ace.who == Who.EVERYONE:
            hit = True
        elif ace.who == Who.USER:
            hit = uid == ace.id
        else:
            hit = ace.id in gids
        if not hit or not ace.mask & undecided:
            continue
        if ace.type == AceType.DENY:
            return False
        undecided &= ~ace.mask
        if not undecided:
            return True
    return False


def nfs4_bits(perm: int, is_dir: bool) -> int:
    """The NFSv4 bits one POSIX permission bit stands for."""
    return {4: AceMask.READ_DATA, 2: AceMask.WRITE_DATA | AceMask.APPEND_DATA
            | (AceMask.DELETE_CHILD if is_dir else 0), 1: AceMask.EXECUTE}[perm]


REQUESTERS = [(uid, frozenset(g)) for uid in (OWNER_UID, *IDS, 99)
              for g in ((), (OWNER_GID,), (1,), (2, 3), (OWNER_GID, 1, 3))]


def normalized(acl: PosixAcl) -> PosixAcl:
    """What an ACL means: named entries and the owning group after the mask, and the mask
    the union of them (bits in a mask that no entry has grant nothing)."""
    if acl.mask is None:
        return acl
    m = acl.mask
    users = [(i, p & m) for i, p in acl.named(Tag.USER)]
    groups = [(i, p & m) for i, p in acl.named(Tag.GROUP)]
    group = acl.group & m
    union = group
    for _, p in users + groups:
        union |= p
    if not users and not groups:
        return PosixAcl.build(acl.owner, group, acl.other)
    return PosixAcl.build(acl.owner, group, acl.other, users, groups, union)


# -- strategies -----------------------------------------------------------------------------------

perms = st.integers(0, 7)


@st.composite
def posix_acls(draw: st.DrawFn) -> PosixAcl:
    users = draw(st.dictionaries(st.sampled_from(IDS), perms, max_size=3))
    groups = draw(st.dictionaries(st.sampled_from(IDS), perms, max_size=3))
    named = bool(users or groups)
    mask = draw(perms) if named or draw(st.booleans()) else None
    if mask is not None and not named:
        # USER_OBJ, GROUP_OBJ, MASK, OTHER: valid, though setfacl would not leave it so
        return PosixAcl(tuple(Entry(t, UNDEFINED_ID, draw(perms) if t != Tag.MASK else mask)
                              for t in (Tag.USER_OBJ, Tag.GROUP_OBJ, Tag.MASK, Tag.OTHER)))
    return PosixAcl.build(draw(perms), draw(perms), draw(perms), users.items(), groups.items(), mask)


MASKS = [AceMask.READ_DATA, AceMask.WRITE_DATA, AceMask.WRITE_DATA | AceMask.APPEND_DATA,
         AceMask.EXECUTE, AceMask.DELETE_CHILD, AceMask.READ_DATA | AceMask.EXECUTE,
         AceMask.READ_DATA | AceMask.WRITE_DATA | AceMask.APPEND_DATA | AceMask.EXECUTE | AceMask.DELETE_CHILD,
         AceMask.WRITE_ACL, AceMask.READ_ACL, AceMask.DELETE, AceMask.SYNCHRONIZE]


@st.composite
def nfs4_aces(draw: st.DrawFn, is_dir: bool) -> list[Ace]:
    out = []
    for _ in range(draw(st.integers(0, 8))):
        who = draw(st.sampled_from(list(Who)))
        ident = draw(st.sampled_from(IDS)) if who in (Who.USER, Who.NAMED_GROUP) else -1
        flag = AceFlag.IDENTIFIER_GROUP if who == Who.NAMED_GROUP else 0
        if is_dir:
            flag |= draw(st.sampled_from([0, 0, INHERIT, INHERIT | AceFlag.INHERIT_ONLY]))
        mask = 0
        for m in draw(st.lists(st.sampled_from(MASKS), min_size=1, max_size=3)):
            mask |= m
        kind = draw(st.sampled_from([AceType.ALLOW, AceType.ALLOW, AceType.DENY]))
        out.append(Ace(kind, int(flag), int(mask), who, ident))
    return out


# -- POSIX -> NFSv4 is exact ----------------------------------------------------------------------

@settings(max_examples=300)
@given(posix_acls(), st.booleans())
def test_posix_to_nfs4_grants_exactly_what_posix_grants(acl: PosixAcl, is_dir: bool) -> None:
    aces = to_nfs4(acl, None, is_dir)
    for uid, gids in REQUESTERS:
        for perm in (4, 2, 1):
            assert nfs4_grants(aces, uid, gids, nfs4_bits(perm, is_dir)) == posix_grants(acl, uid, gids, perm), (
                uid, gids, perm, [a.describe() for a in aces])


@settings(max_examples=300)
@given(posix_acls(), st.one_of(st.none(), posix_acls()), st.booleans())
def test_posix_to_nfs4_to_posix_is_identity_up_to_the_mask(acl: PosixAcl, default: PosixAcl | None,
                                                           is_dir: bool) -> None:
    back, back_default = to_posix(to_nfs4(acl, default, is_dir), is_dir)
    assert back == normalized(acl)
    assert back_default == (normalized(default) if default is not None and is_dir else None)
    # ... and exactly the identity for an ACL that is already normalized
    again, _ = to_posix(to_nfs4(back, None, is_dir), is_dir)
    assert again == back


# -- NFSv4 -> POSIX never grants more -------------------------------------------------------------

@settings(max_examples=600)
@given(st.booleans().flatmap(lambda d: st.tuples(st.just(d), nfs4_aces(d))))
def test_nfs4_to_posix_never_grants_more_than_the_acl(case: tuple[bool, list[Ace]]) -> None:
    is_dir, aces = case
    try:
        access, default = to_posix(aces, is_dir)
    except Unrepresentable as exc:
        assert 0 <= exc.index < len(aces) and exc.ace is aces[exc.index]
        return
    inherited = [Ace(a.type, a.flag & ~(INHERIT | AceFlag.INHERIT_ONLY), a.mask, a.who, a.id)
                 for a in aces if a.flag & INHERIT]
    for uid, gids in REQUESTERS:
        for perm in (4, 2, 1):
            if posix_grants(access, uid, gids, perm):
                assert nfs4_grants(aces, uid, gids, nfs4_bits(perm, is_dir)), (uid, gids, perm)
            if default is not None and posix_grants(default, uid, gids, perm):
                assert nfs4_grants(inherited, uid, gids, nfs4_bits(perm, is_dir)), ("inherited", uid, gids, perm)


def _ace(kind: AceType, who: Who, mask: int, ident: int = -1, flag: int = 0) -> Ace:
    if who == Who.NAMED_GROUP:
        flag |= AceFlag.IDENTIFIER_GROUP
    return Ace(kind, flag, mask, who, ident)


RWX = AceMask.READ_DATA | AceMask.WRITE_DATA | AceMask.APPEND_DATA | AceMask.EXECUTE


@pytest.mark.parametrize(("aces", "index", "why"), [
    ([_ace(AceType.ALLOW, Who.OWNER, RWX), _ace(AceType.DENY, Who.USER, AceMask.DELETE, 1)], 1, "cannot deny DELETE"),
    ([_ace(AceType.DENY, Who.EVERYONE, AceMask.READ_ACL)], 0, "cannot deny READ_ACL"),
    ([_ace(AceType.DENY, Who.OWNER, AceMask.WRITE_ACL)], 0, "reaches the file's owner"),
    ([_ace(AceType.DENY, Who.USER, AceMask.WRITE_ATTRIBUTES, 1)], 0, "reaches the file's owner"),
    ([Ace(AceType.AUDIT, 0, AceMask.READ_DATA, Who.EVERYONE)], 0, "AUDIT and ALARM"),
    ([_ace(AceType.ALLOW, Who.EVERYONE, AceMask.READ_DATA, flag=AceFlag.NO_PROPAGATE_INHERIT)], 0,
     "NO_PROPAGATE_INHERIT"),
    ([_ace(AceType.ALLOW, Who.EVERYONE, AceMask.READ_DATA, flag=AceFlag.INHERITED)], 0, "INHERITED"),
    ([_ace(AceType.ALLOW, Who.USER, AceMask.READ_DATA, 1, flag=AceFlag.FILE_INHERIT)], 0, "FILE_INHERIT and"),
    ([_ace(AceType.ALLOW, Who.USER, AceMask.READ_DATA, 1, flag=AceFlag.INHERIT_ONLY)], 0, "applies to nothing"),
])
def test_unrepresentable_acl_is_refused_naming_the_ace(aces: list[Ace], index: int, why: str) -> None:
    with pytest.raises(Unrepresentable) as info:
        to_posix(aces, True)
    assert info.value.index == index and why in str(info.value)
    assert f"ACE {index} (" in str(info.value)
    assert not info.value.malformed


def test_inheritance_on_a_file_and_undefined_bits_are_refused() -> None:
    with pytest.raises(Unrepresentable, match="not a directory"):
        to_posix([_ace(AceType.ALLOW, Who.EVERYONE, AceMask.READ_DATA, flag=INHERIT)], False)
    with pytest.raises(Unrepresentable) as info:
        to_posix([_ace(AceType.ALLOW, Who.EVERYONE, 0x800)], False)
    assert info.value.malformed
    with pytest.raises(Unrepresentable) as info:
        to_posix([Ace(7, 0, AceMask.READ_DATA, Who.EVERYONE)], False)
    assert info.value.malformed


def test_a_deny_after_the_bit_was_allowed_is_no_deny() -> None:
    # RFC 8881 §6.2.1: the first ACE that mentions a bit decides it, so this DENY of READ_ACL
    # denies nothing and is accepted.
    access, _ = to_posix([_ace(AceType.ALLOW, Who.EVERYONE, AceMask.READ_ACL | AceMask.READ_DATA),
                          _ace(AceType.DENY, Who.USER, AceMask.READ_ACL, 1)], False)
    assert access.named(Tag.USER) == [(1, 4)]


def test_a_typical_acl_maps_to_the_expected_posix_acl() -> None:
    # alice (uid 1) read-write, the group "proj" (gid 2) read, nobody else anything
    aces = [_ace(AceType.ALLOW, Who.OWNER, RWX | AceMask.WRITE_ACL | AceMask.WRITE_ATTRIBUTES),
            _ace(AceType.ALLOW, Who.USER, AceMask.READ_DATA | AceMask.WRITE_DATA | AceMask.APPEND_DATA, 1),
            _ace(AceType.ALLOW, Who.GROUP, AceMask.READ_DATA),
            _ace(AceType.ALLOW, Who.NAMED_GROUP, AceMask.READ_DATA, 2),
            _ace(AceType.ALLOW, Who.EVERYONE, 0)]
    access, default = to_posix(aces, False)
    assert access == PosixAcl.build(7, 4, 0, [(1, 6)], [(2, 4)], mask=6)
    assert default is None
    assert access.mode_bits() == 0o760


def test_inheritable_aces_become_the_default_acl() -> None:
    aces = [_ace(AceType.ALLOW, Who.OWNER, RWX),
            _ace(AceType.ALLOW, Who.USER, AceMask.READ_DATA | AceMask.EXECUTE, 1, flag=INHERIT | AceFlag.INHERIT_ONLY),
            _ace(AceType.ALLOW, Who.OWNER, RWX | AceMask.DELETE_CHILD, flag=INHERIT)]
    access, default = to_posix(aces, True)
    # the first OWNER@ ACE lacks DELETE_CHILD (no w on a directory); the last, inheritable but
    # not INHERIT_ONLY, adds it for the directory itself too
    assert access == PosixAcl.build(7, 0, 0)
    assert default == PosixAcl.build(7, 0, 0, [(1, 5)], [], mask=5)


# -- the xattr format -----------------------------------------------------------------------------

def test_xattr_bytes_match_what_setfacl_writes() -> None:
    # setfacl -m u:1000:rw-,g:2000:r-- on a 0644 file writes exactly these bytes
    # (little-endian: version 2, then tag, perm, id per entry).
    want = bytes.fromhex("0200000001000600ffffffff02000600e803000004000400ffffffff"
                         "08000400d007000010000600ffffffff20000400ffffffff")
    acl = PosixAcl.build(6, 4, 4, [(1000, 6)], [(2000, 4)], mask=6)
    assert encode(acl) == want
    assert decode(want) == acl


@given(posix_acls())
def test_xattr_round_trip(acl: PosixAcl) -> None:
    assert decode(encode(acl)) == acl


@pytest.mark.parametrize("data", [
    b"", b"\x02\x00\x00", bytes.fromhex("01000000"),  # too short, wrong version
    bytes.fromhex("02000000") + bytes(7),  # not whole entries
    bytes.fromhex("0200000001000600ffffffff"),  # no GROUP_OBJ / OTHER
    bytes.fromhex("0200000001000600ffffffff02000600e803000004000400ffffffff20000400ffffffff"),  # no mask
    bytes.fromhex("0200000001000600ffffffff04000400ffffffff20000800ffffffff"),  # perm 010
    bytes.fromhex("0200000001000600ffffffff04000400ffffffff40000400ffffffff"),  # unknown tag
    bytes.fromhex("0200000001000600ffffffff02000600e803000002000400e8030000"
                  "04000400ffffffff10000600ffffffff20000400ffffffff"),  # user 1000 twice
])
def test_xattr_decode_refuses_what_the_kernel_never_writes(data: bytes) -> None:
    with pytest.raises(PosixAclError):
        decode(data)


def test_xattr_decode_bound() -> None:
    entries = [(i, 4) for i in range(MAX_ENTRIES - 3)]
    big = PosixAcl.build(6, 4, 4, entries[:-1], [], mask=4)
    assert len(big.entries) == MAX_ENTRIES
    assert decode(encode(big)) == big
    with pytest.raises(PosixAclError, match="exceed"):
        decode(encode(PosixAcl.build(6, 4, 4, entries, [], mask=4)))


@pytest.mark.parametrize("is_dir", [False, True])
def test_every_mode_round_trips(is_dir: bool) -> None:
    # RFC 8881 §6.4.2: the ACL a mode stands for maps back to that mode, for all 512 of them
    for mode in range(0o1000):
        access, default = to_posix(to_nfs4(PosixAcl.from_mode(mode), None, is_dir), is_dir)
        assert access == PosixAcl.from_mode(mode) and access.mode_bits() == mode and default is None
