"""Security behaviours over the protocol, against the real server: read-only exports, stolen
stateids, RENAME/LINK across exports and the check on the saved handle, OPEN through a
symbolic link that leaves the export, root squash of a Kerberos principal mapped to uid 0,
a principal unknown to the directory, SP4_MACH_CRED, and a host-name client rule facing a
forged PTR record.

Callers are non-root (AUTH_SYS uid 1000, or Kerberos principals mapped to ordinary ids)
wherever the kernel's permission decision would otherwise hide the server's own check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.nfs4 import Nfs4Client, Nfs4Error, OpenFile
from securenfs.client.rpc import AuthSys
from securenfs.config import ClientRule
from securenfs.nfs4.xdr4 import (
    CreateArgs,
    Fattr,
    FhArgs,
    LockArgs,
    LockuArgs,
    NameArgs,
    OpenArgs,
    OpenDowngradeArgs,
    RenameArgs,
    SetattrArgs,
    StateidArgs,
    StateOwner,
    VoidArgs,
    WriteArgs,
)
from securenfs.proto.constants import Attr, FType, Op, Stat
from tests.support.nfsserver import NfsServer, run

V = VoidArgs()
USER = AuthSys(uid=1000, gid=1000)
OPEN4_CREATE, UNCHECKED4, CLAIM_NULL = 1, 0, 0
WRITE_LT = 2


async def _client(srv: NfsServer, auth: Any = USER) -> Nfs4Client:
    c = await Nfs4Client.connect("127.0.0.1", srv.port, auth)
    await c.establish()
    await c.reclaim_complete()  # RFC 8881 §18.51.3: before the first non-reclaim OPEN
    return c


def _open_args(c: Nfs4Client, name: bytes, access: int, create: bool) -> OpenArgs:
    a = OpenArgs(0, access, 0, StateOwner(c.clientid, b"sec-owner"))
    if create:
        a.opentype, a.createmode = OPEN4_CREATE, UNCHECKED4
        a.createattrs = Fattr()
        a.verifier = b"\0" * 8
    a.claim, a.name = CLAIM_NULL, name
    return a


def _status(rep: Any) -> int:
    return int(rep.status)


# -- read-only exports ------------------------------------------------------------------------
@pytest.fixture
def ro_server(tmp_path: Path) -> Iterator[NfsServer]:
    """/ro exported read-only to everyone, /rw read-write; files writable by anyone on disk,
    so only the export's access rule can refuse a change."""
    srv = NfsServer(tmp_path, [("/ro", ["sys"], [ClientRule(access="ro")]), ("/rw", ["sys"], [ClientRule()])])
    for d in srv.paths.values():
        d.chmod(0o777)
        (d / "f").write_bytes(b"original")
        (d / "f").chmod(0o666)
        (d / "sub").mkdir()
        (d / "sub").chmod(0o777)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_read_only_export_refuses_every_change_with_rofs(ro_server: NfsServer) -> None:
    # RFC 8881 §15.1.4.7: NFS4ERR_ROFS "a modifying operation was attempted on a read-only
    # file system"; every operation that changes the export answers it.
    async def main() -> None:
        c = await _client(ro_server)
        root = await c.lookup_path("/ro")
        f = await c.lookup_path("/ro/f")
        sub = await c.lookup_path("/ro/sub")
        anon = b"\0" * 16
        cases: list[tuple[str, list[tuple[int, Any]]]] = [
            ("WRITE", [(Op.PUTFH, FhArgs(f)), (Op.WRITE, WriteArgs(anon, 0, 2, b"changed"))]),
            ("SETATTR mode", [(Op.PUTFH, FhArgs(f)),
                              (Op.SETATTR, SetattrArgs(anon, _fattr_mode(0o600)))]),
            ("SETATTR size", [(Op.PUTFH, FhArgs(f)), (Op.SETATTR, SetattrArgs(anon, _fattr_size(0)))]),
            ("CREATE", [(Op.PUTFH, FhArgs(root)), (Op.CREATE, CreateArgs(FType.DIR, b"newdir", Fattr()))]),
            ("REMOVE", [(Op.PUTFH, FhArgs(root)), (Op.REMOVE, NameArgs(b"f"))]),
            ("RENAME", [(Op.PUTFH, FhArgs(root)), (Op.SAVEFH, V), (Op.PUTFH, FhArgs(sub)),
                        (Op.RENAME, RenameArgs(b"f", b"g"))]),
            ("LINK", [(Op.PUTFH, FhArgs(f)), (Op.SAVEFH, V), (Op.PUTFH, FhArgs(sub)), (Op.LINK, NameArgs(b"h"))]),
            ("OPEN create", [(Op.PUTFH, FhArgs(root)), (Op.OPEN, _open_args(c, b"new", 3, True))]),
            ("OPEN for write", [(Op.PUTFH, FhArgs(root)), (Op.OPEN, _open_args(c, b"f", 2, False))]),
        ]
        for what, ops in cases:
            rep = await c.seq_raw(ops)
            assert _status(rep) == Stat.ROFS, (what, rep.status)
        d = ro_server.paths["/ro"]
        assert (d / "f").read_bytes() == b"original" and (d / "f").stat().st_mode & 0o777 == 0o666
        assert sorted(os.listdir(d)) == ["f", "sub"] and os.listdir(d / "sub") == []
        # Reading is allowed, and the same changes go through on the read-write export.
        g = await c.open(root, "f", access=1)
        assert bytes((await c.read(g.fh, 0, 100, g.stateid)).data) == b"original"
        rw = await c.lookup_path("/rw")
        h = await c.open(rw, "f", access=3)
        await c.write(h.fh, 0, b"changed", h.stateid)
        await c.create(rw, "newdir")
        assert (ro_server.paths["/rw"] / "f").read_bytes().startswith(b"changed")
        await c.close()

    run(main())


def _fattr_mode(mode: int) -> Fattr:
    from securenfs.client.nfs4 import fattr_of

    return fattr_of({Attr.MODE: mode})


def _fattr_size(size: int) -> Fattr:
    from securenfs.client.nfs4 import fattr_of

    return fattr_of({Attr.SIZE: size})


# -- another client's stateids ----------------------------------------------------------------
def test_another_clients_stateids_are_refused(state_server: NfsServer) -> None:
    # RFC 8881 §8.2.2 / §15.1.5.4: a stateid the server did not give to this client is
    # NFS4ERR_BAD_STATEID for it; the owner's state is untouched.
    async def main() -> None:
        d = state_server.paths["/a"]
        d.chmod(0o777)
        a = await _client(state_server)
        b = await _client(state_server, AuthSys(uid=1000, gid=1000, machinename="other"))
        root_a = await a.lookup_path("/a")
        root_b = await b.lookup_path("/a")
        fa = await a.open(root_a, "shared", create=True, access=3)
        await a.write(fa.fh, 0, b"0123456789", fa.stateid)
        lock_sid = await a.lock(fa, 0, 5)
        fb = await b.open(root_b, "shared", access=3)
        stolen = OpenFile(fa.fh, fa.stateid)
        checks: list[tuple[str, list[tuple[int, Any]]]] = [
            ("LOCK with A's open stateid", [(Op.PUTFH, FhArgs(fa.fh)), (Op.LOCK, LockArgs(
                WRITE_LT, False, 20, 5, True, 0, stolen.stateid, 0, StateOwner(b.clientid, b"thief")))]),
            ("LOCK with A's lock stateid", [(Op.PUTFH, FhArgs(fa.fh)), (Op.LOCK, LockArgs(
                WRITE_LT, False, 20, 5, False, lock_stateid=lock_sid))]),
            ("LOCKU", [(Op.PUTFH, FhArgs(fa.fh)), (Op.LOCKU, LockuArgs(WRITE_LT, 0, lock_sid, 0, 5))]),
            ("OPEN_DOWNGRADE", [(Op.PUTFH, FhArgs(fa.fh)),
                                (Op.OPEN_DOWNGRADE, OpenDowngradeArgs(fa.stateid, 0, 1, 0))]),
            ("FREE_STATEID", [(Op.FREE_STATEID, StateidArgs(lock_sid))]),
            ("SETATTR size", [(Op.PUTFH, FhArgs(fa.fh)), (Op.SETATTR, SetattrArgs(fa.stateid, _fattr_size(0)))]),
            ("WRITE", [(Op.PUTFH, FhArgs(fa.fh)), (Op.WRITE, WriteArgs(fa.stateid, 0, 2, b"XX"))]),
        ]
        for what, ops in checks:
            rep = await b.seq_raw(ops)
            assert _status(rep) == Stat.BAD_STATEID, (what, rep.status)
        assert (d / "shared").read_bytes() == b"0123456789"
        # A's lock still holds against B's own lock-owner, and A can still use all of its state.
        with pytest.raises(Nfs4Error) as err:
            await b.lock(fb, 0, 5, lock_owner=b"b-owner")
        assert err.value.status == Stat.DENIED
        assert await a.test_stateids([fa.stateid, lock_sid]) == [0, 0]
        await a.locku(fa.fh, lock_sid, 0, 5)
        await a.close_file(fa)
        await a.close()
        await b.close()

    run(main())


# -- RENAME and LINK between exports ----------------------------------------------------------
def test_rename_and_link_between_exports_are_xdev(ro_server: NfsServer) -> None:
    # RFC 8881 §18.26.4 / §18.9.4: the saved and current handles on different file systems
    # give NFS4ERR_XDEV; nothing moves.
    async def main() -> None:
        c = await _client(ro_server, AuthSys(uid=1000, gid=1000))
        rw = await c.lookup_path("/rw")
        rw_sub = await c.lookup_path("/rw/sub")
        # Both directions; a read-write target so that only the export boundary refuses.
        ro = await c.lookup_path("/ro")
        rep = await c.seq_raw([(Op.PUTFH, FhArgs(ro)), (Op.SAVEFH, V), (Op.PUTFH, FhArgs(rw_sub)),
                               (Op.RENAME, RenameArgs(b"f", b"moved"))])
        assert _status(rep) == Stat.XDEV
        ro_f = await c.lookup_path("/ro/f")
        rep = await c.seq_raw([(Op.PUTFH, FhArgs(ro_f)), (Op.SAVEFH, V), (Op.PUTFH, FhArgs(rw_sub)),
                               (Op.LINK, NameArgs(b"linked"))])
        assert _status(rep) == Stat.XDEV
        assert os.listdir(ro_server.paths["/rw"] / "sub") == []
        assert (ro_server.paths["/ro"] / "f").exists()
        # Within one export both work (on a file of the caller's own).
        own = await c.open(rw, "own", create=True)
        await c.close_file(own)
        await c.link(own.fh, rw_sub, "linked")
        await c.rename(rw, "f", rw_sub, "moved")
        assert sorted(os.listdir(ro_server.paths["/rw"] / "sub")) == ["linked", "moved"]
        await c.close()

    run(main())


# -- OPEN through a symbolic link that leaves the export --------------------------------------
def test_open_by_name_through_a_symlink_leaving_the_export(tmp_path: Path) -> None:
    # RFC 8881 §18.16.3: OPEN of a name that is a symbolic link answers NFS4ERR_SYMLINK; the
    # server never follows it (which could reach outside the export), not even to create.
    srv = NfsServer(tmp_path, [("/a", ["sys"], [ClientRule(squash="root")])])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("outside the export\n")
    (outside / "secret").chmod(0o666)
    outside.chmod(0o777)
    d = srv.paths["/a"]
    d.chmod(0o777)
    (d / "to-secret").symlink_to(outside / "secret")
    (d / "to-new").symlink_to(outside / "created-through-link")
    (d / "up").symlink_to("../outside/secret")
    srv.start()

    async def main() -> None:
        c = await _client(srv)
        root = await c.lookup_path("/a")
        for name, access, create in ((b"to-secret", 1, False), (b"to-secret", 3, False), (b"up", 1, False),
                                     (b"to-new", 3, True), (b"to-secret", 3, True)):
            rep = await c.seq_raw([(Op.PUTFH, FhArgs(root)), (Op.OPEN, _open_args(c, name, access, create))])
            assert _status(rep) == Stat.SYMLINK, (name, create, rep.status)
        assert not (outside / "created-through-link").exists()
        assert (outside / "secret").read_text() == "outside the export\n"
        # LOOKUP of the link itself is fine (READLINK shows its text); a real file opens.
        f = await c.open(root, "plain", create=True)
        await c.close_file(f)
        await c.close()

    try:
        run(main())
    finally:
        srv.stop()


# -- a host-name client rule and a forged PTR record ------------------------------------------
def _dns_resolver(server: Any) -> Any:
    """The server's own confirm-by-forward-lookup logic (resolve_peer_names), with both
    lookups asked of the test DNS server instead of the system's."""
    import dns.exception
    import dns.resolver
    import dns.reversename

    from securenfs.exports.table import resolve_peer_names

    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port, r.lifetime = [server.host], server.port, 2.0

    def reverse(ip: str) -> list[str]:
        try:
            return [t.to_text() for t in r.resolve(dns.reversename.from_address(ip), "PTR")]
        except dns.exception.DNSException as exc:
            raise OSError(str(exc)) from None

    def forward(name: str) -> list[str]:
        try:
            return [t.to_text() for t in r.resolve(name, "A")]
        except dns.exception.DNSException as exc:
            raise OSError(str(exc)) from None

    return lambda ip: resolve_peer_names(ip, reverse=reverse, forward=forward)


@pytest.mark.parametrize("forward,allowed", [("10.9.9.9", False), ("127.0.0.1", True)])
def test_host_name_rule_with_a_forged_ptr(tmp_path: Path, dns_server: Any, forward: str, allowed: bool) -> None:
    # The PTR of 127.0.0.1 claims trusted.example.test.  Only when that name's own address
    # record leads back to 127.0.0.1 is the claim believed; a forged PTR (the name belongs to
    # 10.9.9.9) matches no rule: NFS4ERR_ACCESS for the export (RFC 8881 §15.1.6.1), and the
    # pseudo directory above it stays hidden.
    from tests.support.dnsserver import host_zone

    dns_server.set_zone(host_zone({"trusted.example.test": forward}, ptrs={"127.0.0.1": ["trusted.example.test"]}))
    srv = NfsServer(tmp_path, [("/t/share", ["sys"], [ClientRule(match="trusted.example.test", squash="root")])],
                    resolver=_dns_resolver(dns_server))
    srv.start()

    async def main() -> None:
        c = await _client(srv)
        rep = await c.seq_raw([(Op.PUTROOTFH, V), *Nfs4Client.path_ops("/t/share")[1:], (Op.GETFH, V)])
        if allowed:
            assert _status(rep) == 0
        else:
            assert _status(rep) == Stat.NOENT, rep.status
        fh = srv.server.nfs.service.ns.fs[srv.server.nfs.service.ns.table.exports[0].export_id].root_fh()  # type: ignore[union-attr]
        rep = await c.seq_raw([(Op.PUTFH, FhArgs(fh)), (Op.GETFH, V)])
        assert _status(rep) == (0 if allowed else Stat.ACCESS)
        await c.close()

    try:
        run(main())
    finally:
        srv.stop()
