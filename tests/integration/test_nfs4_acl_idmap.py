"""ACLs naming LDAP users and groups, set and enforced for Kerberos callers over krb5i.

Real KDC, real slapd, real server: alice (uid 5001) owns a file and gives bob (uid 5002,
and the LDAP group cyc-a access by name; the kernel then
decides as each of them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.acl.ace import AceFlag, AceMask, AceType
from securenfs.client.gss import GssClientAuth
from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import RpcClient
from securenfs.config import ClientRule
from securenfs.proto.constants import Access4, Attr, Stat
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.rpcsec_gss.constants import GssService
from tests.support.acls import (
    access_bits,
    allow,
    deny,
    getfacl,
    open_close,
    require_posix_acls,
)
from tests.support.kdc import KdcRealm
from tests.support.nfsserver import NfsServer, status_of
from tests.support.slapd import DOMAIN, GROUPS, PEOPLE, SUFFIX, Directory

ALICE, BOB, STAFF, CYC_A = 5001, 5002, 5000, 5400  # alice is in cyc-a, bob is not
R = AceMask.READ_DATA
W = AceMask.WRITE_DATA | AceMask.APPEND_DATA
OWNER_ALL = R | W | AceMask.WRITE_ACL | AceMask.WRITE_ATTRIBUTES








def _server(tmp_path: Path, kdc: KdcRealm, uri: str, **ldap: Any) -> NfsServer:
    require_posix_acls(tmp_path)
    srv = NfsServer(tmp_path, [("/home", ["krb5", "krb5i", "krb5p"], [ClientRule(squash="root")])], kdc=kdc)
    srv.cfg.idmap_raw = {
        "domain": DOMAIN,
        "local_realms": [kdc.realm],
        "backends": ["ldap"],
        "ldap": {"uris": [uri], "base": SUFFIX, "user_base": PEOPLE, "group_base": GROUPS,
                 "schema": "rfc2307bis", "timeout": 2, **ldap},
    }
    home = srv.paths["/home"]
    os.chmod(home, 0o755)
    f = home / "plan.txt"
    f.write_text("alice's plan\n")
    os.chown(f, ALICE, STAFF)
    os.chmod(f, 0o600)
    return srv


@pytest.fixture
def acl_idmap_server(tmp_path: Path, kdc_realm: KdcRealm, slapd_directory: Directory) -> Iterator[NfsServer]:
    srv = _server(tmp_path, kdc_realm, slapd_directory.uri)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def _session(srv: NfsServer, kdc: KdcRealm, principal: str) -> Nfs4Client:
    rpc = await RpcClient.connect("127.0.0.1", srv.port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache(principal)), service=GssService.INTEGRITY)
    client = Nfs4Client(rpc, auth)
    await client.mount("/home")
    return client








def test_acl_names_ldap_users_and_groups_and_the_kernel_enforces_it(acl_idmap_server: NfsServer,
                                                                    kdc_realm: KdcRealm) -> None:
    path = acl_idmap_server.paths["/home"] / "plan.txt"

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        alice = await _session(acl_idmap_server, kdc_realm, "alice")
        bob = await _session(acl_idmap_server, kdc_realm, "bob")
        try:
            fa = await alice.lookup_path("/home/plan.txt")
            fb = await bob.lookup_path("/home/plan.txt")
            out["bob-before"] = await access_bits(bob, fb, Access4.READ)
            await alice.setattr(fa, {Attr.ACL: [
                allow("OWNER@", OWNER_ALL),
                allow(f"bob@{DOMAIN}", R),
                allow(f"cyc-a@{DOMAIN}", R | W, AceFlag.IDENTIFIER_GROUP),
                allow("EVERYONE@", 0),
            ]})
            out["facl"] = getfacl(path)
            out["acl"] = (await alice.getattr(fa, [Attr.ACL]))[Attr.ACL]
            # bob's cached ACCESS answer is stale now; the client asks again (RFC 8881 §18.1)
            out["bob-granted"] = await access_bits(bob, fb, Access4.READ | Access4.MODIFY)
            out["bob-read"] = await status_of(open_close(bob, fb))
            # then alice takes bob's read away with a DENY ahead of the group's ALLOW
            await alice.setattr(fa, {Attr.ACL: [
                allow("OWNER@", OWNER_ALL),
                deny(f"bob@{DOMAIN}", R | W),
                allow(f"staff@{DOMAIN}", R, AceFlag.IDENTIFIER_GROUP),
                allow("EVERYONE@", 0),
            ]})
            out["facl-deny"] = getfacl(path)
            out["bob-denied"] = await access_bits(bob, fb, Access4.READ | Access4.MODIFY)
            out["bob-read-denied"] = await status_of(open_close(bob, fb))
            out["alice-read"] = await status_of(open_close(alice, fa))
            # bob is not the owner: the kernel refuses his ACL change (EPERM)
            out["bob-setacl"] = await status_of(bob.setattr(fb, {Attr.ACL: [allow("EVERYONE@", R)]}))
            # a name the directory does not know (RFC 8881 §5.9: NFS4ERR_BADOWNER)
            out["unknown"] = await status_of(alice.setattr(fa, {Attr.ACL: [allow(f"nosuchuser@{DOMAIN}", R)]}))
            out["unknown-group"] = await status_of(alice.setattr(fa, {Attr.ACL: [
                allow(f"nosuchgroup@{DOMAIN}", R, AceFlag.IDENTIFIER_GROUP)]}))
            out["after"] = getfacl(path)
        finally:
            await alice.close()
            await bob.close()
        return out

    out = asyncio.run(main())
    assert out["bob-before"] == 0  # 0600, alice's
    assert out["facl"] == ["user::rw-", f"user:{BOB}:r--", "group::---", f"group:{CYC_A}:rw-", "mask::rw-",
                           "other::---"]
    whos = {(a.type, a.who.decode(), bool(a.flag & AceFlag.IDENTIFIER_GROUP)) for a in out["acl"]}
    assert (AceType.ALLOW, f"bob@{DOMAIN}", False) in whos
    assert (AceType.ALLOW, f"cyc-a@{DOMAIN}", True) in whos
    assert out["bob-granted"] == Access4.READ
    assert out["bob-read"] == 0
    # bob is in staff, but his own entry (no permissions) decides: POSIX checks named users first
    assert out["facl-deny"] == ["user::rw-", f"user:{BOB}:---", "group::---", f"group:{STAFF}:r--", "mask::r--",
                                "other::---"]
    assert out["bob-denied"] == 0
    assert out["bob-read-denied"] == Stat.ACCESS
    assert out["alice-read"] == 0
    assert out["bob-setacl"] == Stat.PERM
    assert out["unknown"] == Stat.BADOWNER
    assert out["unknown-group"] == Stat.BADOWNER
    assert out["after"] == out["facl-deny"]


def test_ldap_outage_while_setting_an_acl_is_delay(tmp_path: Path, kdc_realm: KdcRealm,
                                                   small_directory: Directory) -> None:
    srv = _server(tmp_path, kdc_realm, small_directory.uri, reconnect_min=0.2, reconnect_max=0.4)
    srv.cfg.idmap_raw["ldap"]["timeout"] = 1
    srv.cfg.idmap_raw["outage_delay"] = 60
    srv.start()
    path = srv.paths["/home"] / "plan.txt"

    async def main() -> tuple[int, int]:
        alice = await _session(srv, kdc_realm, "alice")
        try:
            fa = await alice.lookup_path("/home/plan.txt")
            small_directory.stop()
            try:
                # u00001 was never looked up: the directory must answer, and cannot
                during = await status_of(alice.setattr(fa, {Attr.ACL: [allow("OWNER@", OWNER_ALL),
                                                                       allow(f"u00001@{DOMAIN}", R)]}))
            finally:
                small_directory.start()
            after = Stat.DELAY
            for _ in range(100):  # the client retries NFS4ERR_DELAY; bounded
                after = await status_of(alice.setattr(fa, {Attr.ACL: [allow("OWNER@", OWNER_ALL),
                                                                      allow(f"u00001@{DOMAIN}", R)]}))
                if after != Stat.DELAY:
                    break
                await asyncio.sleep(0.2)
            return during, after
        finally:
            await alice.close()

    try:
        during, after = asyncio.run(main())
    finally:
        srv.stop()
    assert during == Stat.DELAY
    assert after == 0
    assert "user:100001:r--" in getfacl(path)
