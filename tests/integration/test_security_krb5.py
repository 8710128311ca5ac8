"""Security behaviours of Kerberos callers, against the real server and a real KDC:
root squash of a principal whose mapping is uid 0, a principal the directory does not know
doing I/O end to end, and SP4_MACH_CRED state protection (WRONG_CRED, and the operations the
machine credential stays allowed to do).

Identities come from a static idmap file: ``toor`` maps to uid 0, ``alice`` and ``bob`` to
ordinary ids, ``ghost`` (a KDC principal) is unknown to it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.gss import GssClientAuth
from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import RpcClient
from securenfs.config import ClientRule
from securenfs.nfs4 import xdr4
from securenfs.nfs4.fattr import set_to_bitmap
from securenfs.nfs4.xdr4 import (
    ClientIdArgs,
    CreateSessionArgs,
    ExchangeIdArgs,
    FhArgs,
    SessionIdArgs,
    StateProtectOps,
    VoidArgs,
)
from securenfs.proto.constants import Op, Stat, StateProtect
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.rpcsec_gss.constants import GssService
from tests.support.kdc import KdcRealm
from tests.support.nfsserver import NfsServer, run

V = VoidArgs()
ANON_UID = 65534


@pytest.fixture
def krb_server(tmp_path: Path, kdc_realm: KdcRealm) -> Iterator[NfsServer]:
    """/sq squashes root (the default), /nosq does not; both krb5/krb5i/krb5p."""
    static = tmp_path / "idmap.static"
    static.write_text("user toor 0 0\nuser alice 5001 5000\nuser bob 5002 5000\ngroup staff 5000 alice bob\n")
    srv = NfsServer(tmp_path, [("/sq", ["krb5i", "krb5p", "krb5"], [ClientRule(squash="root")]),
                               ("/nosq", ["krb5i", "krb5p", "krb5"], [ClientRule(squash="none")])], kdc=kdc_realm)
    srv.cfg.idmap_raw = {"domain": "example.test", "local_realms": [kdc_realm.realm], "backends": ["static"],
                         "static": {"path": str(static)}}
    for d in srv.paths.values():
        d.chmod(0o1777)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def _auth(rpc: RpcClient, kdc: KdcRealm, user: str, service: GssService = GssService.INTEGRITY) -> GssClientAuth:
    return await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache(user)), service=service)


async def _user(srv: NfsServer, kdc: KdcRealm, user: str) -> Nfs4Client:
    rpc = await RpcClient.connect("127.0.0.1", srv.port)
    c = Nfs4Client(rpc, await _auth(rpc, kdc, user))
    await c.establish()
    await c.reclaim_complete()  # RFC 8881 §18.51.3: before the first non-reclaim OPEN
    return c


def test_root_squash_of_a_principal_mapped_to_uid_0(krb_server: NfsServer, kdc_realm: KdcRealm) -> None:
    # A Kerberos principal whose mapping is uid 0 is root for the export's squash rule
    # (squash = "root": it works as the anonymous id), exactly like AUTH_SYS uid 0.
    async def main() -> None:
        c = await _user(krb_server, kdc_realm, "toor")
        for pseudo, owner in (("/sq", ANON_UID), ("/nosq", 0)):
            d = await c.lookup_path(pseudo)
            f = await c.open(d, "by-toor", create=True)
            await c.write(f.fh, 0, b"x", f.stateid)
            await c.close_file(f)
            assert os.stat(krb_server.paths[pseudo] / "by-toor").st_uid == owner, pseudo
        # Squashed, it cannot touch a root-only file the kernel guards (mode 0600, owner 0).
        secret = krb_server.paths["/sq"] / "root-only"
        secret.write_text("root's\n")
        secret.chmod(0o600)
        d = await c.lookup_path("/sq")
        r = await c.seq_raw([(Op.PUTFH, FhArgs(d)), *[(op, a) for op, a in _open_read(c, b"root-only")]])
        assert r.status == Stat.ACCESS
        await c.close()

    run(main())


def _open_read(c: Nfs4Client, name: bytes) -> list[tuple[int, Any]]:
    from securenfs.nfs4.xdr4 import OpenArgs, StateOwner

    a = OpenArgs(0, 1, 0, StateOwner(c.clientid, b"o"))
    a.claim, a.name = 0, name
    return [(Op.OPEN, a)]


def test_principal_unknown_to_the_directory_does_io_as_the_anonymous_id(
        krb_server: NfsServer, kdc_realm: KdcRealm, caplog: pytest.LogCaptureFixture) -> None:
    # RFC 8881 §5.9 leaves the mapping to the server; an unmapped principal works as the
    # anonymous id (never as root, never refused silently), with a log line naming it.
    async def main() -> None:
        c = await _user(krb_server, kdc_realm, "ghost")
        d = await c.lookup_path("/nosq")
        f = await c.open(d, "by-ghost", create=True)
        await c.write(f.fh, 0, b"written by an unknown principal", f.stateid)
        got = await c.read(f.fh, 0, 100, f.stateid)
        assert bytes(got.data) == b"written by an unknown principal"
        await c.close_file(f)
        st = os.stat(krb_server.paths["/nosq"] / "by-ghost")
        assert (st.st_uid, st.st_gid) == (ANON_UID, ANON_UID)
        await c.close()

    run(main())
    assert any("ghost" in r.getMessage() for r in caplog.records if r.name.startswith(("securenfs", "idmap")))


def test_sp4_mach_cred_wrong_cred_and_allowed_ops(krb_server: NfsServer, kdc_realm: KdcRealm) -> None:
    # RFC 8881 §18.35.3 / §2.10.8.3: with SP4_MACH_CRED the ops in spo_must_enforce must come
    # from the principal that created the client id, else NFS4ERR_WRONG_CRED; the ops in
    # spo_must_allow may be done by it on state another principal made.
    async def main() -> None:
        rpc = await RpcClient.connect("127.0.0.1", krb_server.port)
        machine = await _auth(rpc, kdc_realm, "alice")
        user = await _auth(rpc, kdc_realm, "bob")
        c = Nfs4Client(rpc, machine, slots=4)
        enforce = [Op.BIND_CONN_TO_SESSION, Op.EXCHANGE_ID, Op.CREATE_SESSION, Op.DESTROY_SESSION,
                   Op.DESTROY_CLIENTID]
        allow = [Op.CLOSE, Op.LOCKU, Op.TEST_STATEID, Op.FREE_STATEID]
        r = await c.compound([(Op.EXCHANGE_ID, ExchangeIdArgs(c.verifier, c.owner, 0, StateProtect.MACH_CRED,
                                                              StateProtectOps(set_to_bitmap(enforce),
                                                                              set_to_bitmap(allow))))])
        res: Any = r.results[0][1]
        assert r.status == 0 and res.how == StateProtect.MACH_CRED
        c.exchange, c.clientid = res, res.clientid
        # CREATE_SESSION of the unconfirmed client id by another principal: NFS4ERR_CLID_INUSE
        # (§18.36.4, the principal must be the EXCHANGE_ID's); by the machine principal: created.
        cs = [(Op.CREATE_SESSION, CreateSessionArgs(c.clientid, res.sequenceid, 0, *_channels()))]
        r = await c.compound(cs, auth=user)
        assert r.status == Stat.CLID_INUSE
        await c.create_session()
        await c.reclaim_complete()  # RFC 8881 §18.51.3: before the first non-reclaim OPEN
        # The user works on the client's session (an OPEN is the user's own business)...
        root = await c.lookup_path("/nosq")
        c.auth = user
        f = await c.open(root, "by-bob", create=True)
        # ...but may not end the session or the client id.
        for op, args in ((Op.DESTROY_SESSION, SessionIdArgs(c.sessionid)), (Op.DESTROY_CLIENTID,
                                                                           ClientIdArgs(c.clientid))):
            r = await c.compound([(op, args)], auth=user)
            assert r.status == Stat.WRONG_CRED, op
        # The machine principal may close the user's open and test its stateid (must_allow).
        c.auth = machine
        r = await c.seq_raw([(Op.TEST_STATEID, xdr4.TestStateidArgs([f.stateid]))])
        assert r.status == 0 and r.results[-1][1].codes == [0]  # type: ignore[attr-defined]
        await c.close_file(f)
        # The session still serves, and the machine principal ends it.
        r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.GETFH, V)])
        assert r.status == 0
        await c.destroy_session()
        await c.destroy_clientid()
        await c.close()

    run(main())


def test_sp4_mach_cred_needs_integrity(krb_server: NfsServer, kdc_realm: KdcRealm) -> None:
    # RFC 8881 §18.35.3: SP4_MACH_CRED needs RPCSEC_GSS with integrity or privacy; plain
    # krb5 (authentication only) is refused with NFS4ERR_INVAL.
    async def main() -> None:
        rpc = await RpcClient.connect("127.0.0.1", krb_server.port)
        auth = await _auth(rpc, kdc_realm, "alice", GssService.NONE)
        c = Nfs4Client(rpc, auth)
        r = await c.compound([(Op.EXCHANGE_ID, ExchangeIdArgs(c.verifier, c.owner, 0, StateProtect.MACH_CRED,
                                                              StateProtectOps(set_to_bitmap([Op.DESTROY_SESSION]),
                                                                              [])))])
        assert r.status == Stat.INVAL
        await c.establish()  # SP4_NONE is fine on the same context
        await c.close()

    run(main())


def _channels() -> tuple[Any, Any]:
    from securenfs.nfs4.xdr4 import ChannelAttrs

    return (ChannelAttrs(0, (1 << 20) + 1024, (1 << 20) + 1024, 16384, 16, 4), ChannelAttrs(0, 4096, 4096, 0, 2, 1))


def test_garbage_init_tokens_cannot_flood_the_log(krb_server: NfsServer, kdc_realm: KdcRealm,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # Anyone may send RPCSEC_GSS INIT calls (RFC 2203 §5.2.2) before authenticating; each
    # failure is refused, but the lines about them come out of the peer's log budget
    # (securenfs.rpc.peerlog): a burst, then counts for the summary line.
    from securenfs.client.gss import init_call
    from securenfs.rpcsec_gss.constants import GssProc

    async def main() -> None:
        rpc = await RpcClient.connect("127.0.0.1", krb_server.port)
        for i in range(300):
            res, _ = await init_call(rpc, NFS_PROGRAM, NFS_V4, GssProc.INIT, b"", b"not a token %d" % i)
            assert res.handle == b""
        # Still served: a real context and a COMPOUND.
        c = await _user(krb_server, kdc_realm, "alice")
        r = await c.seq_raw([(Op.PUTROOTFH, V), (Op.GETFH, V)])
        assert r.status == 0
        await c.close()
        await rpc.close()

    with caplog.at_level(logging.INFO, "securenfs"):
        run(main())
    failed = [r for r in caplog.records if "context establishment failed" in r.getMessage()]
    assert 1 <= len(failed) <= 40, len(failed)
    peerlog = krb_server.server.rpc.peerlog  # type: ignore[union-attr]
    assert peerlog.suppressed >= 250
    peerlog.flush()
    summary = [r.getMessage() for r in caplog.records if r.name == "securenfs.peerlog"]
    assert any(s.startswith("peer 127.0.0.1: ") and "GSS " in s for s in summary), summary
