"""ID mapping wired into the server: Kerberos principals run as their LDAP identity, and
GETATTR shows names from the directory (real KDC, real slapd, real server)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.gss import GssClientAuth
from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.client.rpc import RpcClient
from securenfs.config import ClientRule
from securenfs.nfs4.xdr4 import AccessArgs, AccessRes, FhArgs
from securenfs.proto.constants import Access4, Attr, Op, Stat
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.rpcsec_gss.constants import GssService
from tests.support.kdc import KdcRealm
from tests.support.nfsserver import NfsServer
from tests.support.slapd import DOMAIN, GROUPS, PEOPLE, SUFFIX, Directory

CYC_A = 5400  # an LDAP group alice belongs to and bob does not


@pytest.fixture
def idmap_server(tmp_path: Path, kdc_realm: KdcRealm, slapd_directory: Directory) -> Iterator[NfsServer]:
    srv = NfsServer(tmp_path, [("/home", ["krb5", "krb5i", "krb5p"], [ClientRule(squash="root")])], kdc=kdc_realm)
    srv.cfg.idmap_raw = {
        "domain": DOMAIN,
        "local_realms": [kdc_realm.realm],
        "backends": ["ldap"],
        "ldap": {"uris": [slapd_directory.uri], "base": SUFFIX, "user_base": PEOPLE, "group_base": GROUPS,
                 "schema": "rfc2307bis", "timeout": 2},
    }
    home = srv.paths["/home"]
    os.chmod(home, 0o755)
    secret = home / "group-secret.txt"
    secret.write_text("for the cyc-a group only\n")
    os.chown(secret, 0, CYC_A)
    os.chmod(secret, 0o640)
    mine = home / "alice.txt"
    mine.write_text("alice's\n")
    os.chown(mine, 5001, 5000)
    own_dir = home / "alice-home"
    own_dir.mkdir()
    os.chown(own_dir, 5001, 5000)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def _session(srv: NfsServer, kdc: KdcRealm, user: str) -> Nfs4Client:
    rpc = await RpcClient.connect("127.0.0.1", srv.port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache(user)), service=GssService.INTEGRITY)
    client = Nfs4Client(rpc, auth)
    await client.mount("/home")
    return client


async def _access(client: Nfs4Client, fh: bytes, mask: int) -> int:
    rep = await client.seq([(Op.PUTFH, FhArgs(fh)), (Op.ACCESS, AccessArgs(mask))])
    res: Any = rep.results[-1][1]
    assert isinstance(res, AccessRes)
    return int(res.access)


def test_supplementary_ldap_group_decides_access(idmap_server: NfsServer, kdc_realm: KdcRealm) -> None:
    async def main() -> tuple[int, int]:
        alice = await _session(idmap_server, kdc_realm, "alice")
        bob = await _session(idmap_server, kdc_realm, "bob")
        try:
            fh_a = await alice.lookup_path("/home/group-secret.txt")
            fh_b = await bob.lookup_path("/home/group-secret.txt")
            return await _access(alice, fh_a, Access4.READ), await _access(bob, fh_b, Access4.READ)
        finally:
            await alice.close()
            await bob.close()

    alice_bits, bob_bits = asyncio.run(main())
    assert alice_bits & Access4.READ, "alice is in the file's LDAP group: the kernel must grant read"
    assert not bob_bits & Access4.READ, "bob is not in the group: the kernel must refuse read"


def test_getattr_shows_directory_names(idmap_server: NfsServer, kdc_realm: KdcRealm) -> None:
    async def main() -> dict[int, Any]:
        alice = await _session(idmap_server, kdc_realm, "alice")
        try:
            fh = await alice.lookup_path("/home/alice.txt")
            return await alice.getattr(fh, [Attr.OWNER, Attr.OWNER_GROUP])
        finally:
            await alice.close()

    attrs = asyncio.run(main())
    owner, group = (v.decode() if isinstance(v, bytes) else v for v in (attrs[Attr.OWNER], attrs[Attr.OWNER_GROUP]))
    assert owner == f"alice@{DOMAIN}"
    assert group == f"staff@{DOMAIN}"


def test_files_created_by_a_principal_belong_to_its_uid(idmap_server: NfsServer, kdc_realm: KdcRealm) -> None:
    async def main() -> tuple[dict[int, Any], int, int, list[int]]:
        alice = await _session(idmap_server, kdc_realm, "alice")
        try:
            d = await alice.lookup_path("/home/alice-home")
            f = await alice.open(d, "created.txt", create=True)
            await alice.write(f.fh, 0, b"written as alice over krb5i\n", f.stateid)
            attrs = await alice.getattr(f.fh, [Attr.OWNER, Attr.OWNER_GROUP])
            # an owner string the directory does not know: NFS4ERR_BADOWNER, nothing changed
            try:
                await alice.setattr(f.fh, {Attr.OWNER: b"nosuchuser@" + DOMAIN.encode()})
                bad = 0
            except Nfs4Error as exc:
                bad = exc.status
            # a group alice belongs to, by name: allowed (the kernel decides, as alice)
            try:
                await alice.setattr(f.fh, {Attr.OWNER_GROUP: f"cyc-a@{DOMAIN}".encode()})
                chgrp = 0
            except Nfs4Error as exc:
                chgrp = exc.status
            await alice.close_file(f)
            return attrs, bad, chgrp, []
        finally:
            await alice.close()

    attrs, bad, chgrp, _ = asyncio.run(main())
    st = os.stat(idmap_server.paths["/home"] / "alice-home" / "created.txt")
    assert (st.st_uid, st.st_gid) == (5001, CYC_A), "created as alice's LDAP uid, then chgrp'd to cyc-a"
    owner = attrs[Attr.OWNER]
    assert (owner.decode() if isinstance(owner, bytes) else owner) == f"alice@{DOMAIN}"
    assert bad == Stat.BADOWNER
    assert chgrp == 0
