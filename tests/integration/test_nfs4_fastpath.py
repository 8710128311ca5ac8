"""NFSv4.1 under krb5i and krb5p with the OpenSSL per-message path on and off, at both ends.

One representative session per combination: mount, OPEN (create), WRITE and READ back
1 MiB + 3 bytes (two WRITEs and two READs, since one is capped at 1 MiB) compared by
SHA-256, LOCK, READDIR. The server runs with ``kerberos.fast_path`` true and false; the
client computes its tokens with OpenSSL or with MIT's library. Every token either engine
makes is therefore checked by the other one, on real COMPOUNDs, in every test run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.gss import GssClientAuth
from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import Buffer, RpcClient
from securenfs.config import ClientRule
from securenfs.nfs4.xdr4 import UNSTABLE4
from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
from securenfs.rpcsec_gss.constants import GssService
from tests.support.nfsserver import NfsServer

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
FLAVORS = {"krb5i": GssService.INTEGRITY, "krb5p": GssService.PRIVACY}


@pytest.fixture(scope="module", params=[True, False], ids=["server-fast", "server-mit"])
def krb_server(request: pytest.FixtureRequest, kdc_realm: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[NfsServer]:
    tmp: Path = tmp_path_factory.mktemp("nfs-fastpath")
    srv = NfsServer(tmp, [("/k", ["krb5i", "krb5p"], [ClientRule(squash="none")])], kdc=kdc_realm,
                    fast_path=request.param)
    srv.paths["/k"].chmod(0o777)  # callers without an ID mapping act as the anonymous id
    srv.start()
    srv.kdc = kdc_realm  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


def _server_engines(srv: NfsServer) -> set[str]:
    async def engines() -> set[str]:
        assert srv.server is not None and srv.server.gss is not None
        return {c["protection"] for c in srv.server.gss.contexts()}

    return srv.on_server(engines())


async def _scenario(srv: NfsServer, flavor: str, client_fast: bool, name: str) -> GssClientAuth:
    kdc = srv.kdc  # type: ignore[attr-defined]
    rpc = await RpcClient.connect("127.0.0.1", srv.port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                         ccache=str(kdc.user_ccache("fpuser")),
                                         service=FLAVORS[flavor], fast_path=client_fast)
    c = Nfs4Client(rpc, auth)
    try:
        root = await c.mount("/k")
        data = os.urandom(MIB + 3)
        f = await c.open(root, name, create=True)
        w1 = await c.write(f.fh, 0, data[:MIB], f.stateid, stable=UNSTABLE4)
        w2 = await c.write(f.fh, MIB, data[MIB:], f.stateid, stable=UNSTABLE4)
        assert (w1.count, w2.count) == (MIB, 3)
        await c.commit(f.fh)
        r1 = await c.read(f.fh, 0, MIB, f.stateid)
        r2 = await c.read(f.fh, MIB, MIB, f.stateid)
        back = bytes(r1.data) + bytes(r2.data)
        assert r2.eof
        assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
        # What reached the disk is what was sent (the server decrypted it correctly).
        on_disk = (srv.paths["/k"] / name).read_bytes()
        assert hashlib.sha256(on_disk).digest() == hashlib.sha256(data).digest()
        lock_sid = await c.lock(f, 0, 100, lock_owner=name.encode())
        assert len(lock_sid) == 16
        await c.locku(f.fh, lock_sid, 0, 100)
        names = {e[1] for e in await c.readdir_all(root)}
        assert name.encode() in names
        await c.close_file(f)
        await c.remove(root, name)
        assert name.encode() not in {e[1] for e in await c.readdir_all(root)}
    finally:
        await c.close()
    return auth


@pytest.mark.parametrize("client_fast", [True, False], ids=["client-fast", "client-mit"])
@pytest.mark.parametrize("flavor", ["krb5i", "krb5p"])
def test_io_lock_readdir_on_both_engines(krb_server: NfsServer, flavor: str, client_fast: bool) -> None:
    name = f"f-{flavor}-{'fast' if client_fast else 'mit'}"
    auth = asyncio.run(_scenario(krb_server, flavor, client_fast, name))
    # Each side really ran the engine it was asked for.
    assert auth.protection == ("openssl" if client_fast else "mit"), auth.fast_path_reason
    server_fast = krb_server.cfg.kerberos.fast_path
    assert _server_engines(krb_server) <= {"openssl" if server_fast else "mit"}
    assert _server_engines(krb_server)


def test_tampered_krb5p_write_is_refused(krb_server: NfsServer) -> None:
    """A WRITE whose sealed body was altered in transit never reaches the file (GARBAGE_ARGS)."""
    from securenfs.client.rpc import RpcError
    from securenfs.rpc.constants import AcceptStat

    async def go() -> None:
        kdc = krb_server.kdc  # type: ignore[attr-defined]
        rpc = await RpcClient.connect("127.0.0.1", krb_server.port)
        auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{kdc.hostname}",
                                             ccache=str(kdc.user_ccache("fpuser")),
                                             service=GssService.PRIVACY, fast_path=True)
        c = Nfs4Client(rpc, auth)
        try:
            root = await c.mount("/k")
            f = await c.open(root, "tampered", create=True)
            orig = auth.wrap_args_parts

            def flip(args: Sequence[Buffer], state: Any) -> list[Buffer]:
                out = bytearray(b"".join(orig(args, state)))
                out[len(out) // 2] ^= 0x01
                return [bytes(out)]

            auth.wrap_args_parts = flip  # type: ignore[method-assign]
            with pytest.raises(RpcError) as ei:
                await c.write(f.fh, 0, b"x" * (64 * 1024), f.stateid)
            assert ei.value.reply.accept_stat == AcceptStat.GARBAGE_ARGS
        finally:
            await c.close()
        assert (krb_server.paths["/k"] / "tampered").stat().st_size == 0

    asyncio.run(go())
