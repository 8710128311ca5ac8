"""The WRONGSEC matrix (RFC 8881 §2.6.3.1): export A is krb5p only, export B allows krb5 and
sys, both below the pseudo directory /top.  Every op sequence of the RFC's rules under every
flavor, with SECINFO / SECINFO_NO_NAME answers checked against the same decisions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securenfs.client.nfs4 import Nfs4Client
from securenfs.nfs4.xdr4 import (
    BitmapArgs,
    FhArgs,
    NameArgs,
    OpenArgs,
    SecinfoNoNameArgs,
    StateOwner,
    VoidArgs,
)
from securenfs.proto.constants import RPCSEC_GSS_FLAVOR, Op, SecinfoStyle, Stat
from securenfs.rpcsec_gss.flavors import KRB5_OID_DER
from tests.support.nfsserver import NfsServer, flavor_client

V = VoidArgs()
ALLOWED = {"/top/a": {"krb5p"}, "/top/b": {"krb5", "sys"}}
SERVICE = {"krb5": 1, "krb5i": 2, "krb5p": 3}


@pytest.fixture(scope="module")
def matrix_server(tmp_path_factory: pytest.TempPathFactory, kdc_realm: Any) -> Iterator[NfsServer]:
    tmp: Path = tmp_path_factory.mktemp("wrongsec")
    srv = NfsServer(tmp, [("/top/a", ["krb5p"]), ("/top/b", ["krb5", "sys"])], kdc=kdc_realm)
    (srv.paths["/top/a"] / "sub").mkdir()
    (srv.paths["/top/b"] / "sub").mkdir()
    srv.start()
    srv.kdc = kdc_realm  # type: ignore[attr-defined]
    yield srv
    srv.stop()


async def _client(srv: NfsServer, flavor: str) -> Nfs4Client:
    return await flavor_client(srv, flavor, srv.kdc)  # type: ignore[attr-defined,no-any-return]


def _fh(srv: NfsServer, pseudo: str, sub: str = "") -> bytes:
    ns = srv.server.nfs.service.ns  # type: ignore[union-attr]
    e = next(x for x in ns.table.exports if x.pseudo == pseudo)
    fs = ns.fs[e.export_id]
    return fs.fh_for_path(srv.paths[pseudo] / sub) if sub else fs.root_fh()


@pytest.mark.parametrize("flavor", ["sys", "krb5", "krb5i", "krb5p"])
def test_wrongsec_matrix(matrix_server: NfsServer, flavor: str) -> None:
    srv = matrix_server
    fa, fb = _fh(srv, "/top/a"), _fh(srv, "/top/b")
    fa_sub = _fh(srv, "/top/a", "sub")
    ok_a = flavor in ALLOWED["/top/a"]
    ok_b = flavor in ALLOWED["/top/b"]
    # Pseudo directories allow the union of the exports below: krb5i reaches nothing here.
    ok_pseudo = flavor in ALLOWED["/top/a"] | ALLOWED["/top/b"]

    def want(ok: bool) -> int:
        return 0 if ok else Stat.WRONGSEC

    async def main() -> None:
        c = await _client(srv, flavor)
        await c.establish()
        await c.reclaim_complete()
        ns = srv.server.nfs.service.ns  # type: ignore[union-attr]
        top = ns.codec.pseudo(ns.table.root.children["top"].node_id)

        async def status(ops: list[Any]) -> tuple[int, int]:
            r = await c.seq_raw(ops)
            return r.status, r.results[-1][0]

        gattr = (Op.GETATTR, BitmapArgs([0x2]))
        for fh, ok, name in ((fa, ok_a, b"a"), (fb, ok_b, b"b")):
            # LOOKUP crossing from the pseudo directory into the export (§2.6.3.1.1.3).
            assert await status([(Op.PUTROOTFH, V), (Op.LOOKUP, NameArgs(b"top")), (Op.LOOKUP, NameArgs(name)),
                                 (Op.GETFH, V)]) == (want(ok), Op.GETFH if ok else Op.LOOKUP)
            # PUTFH + anything else: the put itself answers (§2.6.3.1.1.7).
            assert await status([(Op.PUTFH, FhArgs(fh)), gattr]) == (want(ok), Op.GETATTR if ok else Op.PUTFH)
            # PUTFH + nothing.
            assert await status([(Op.PUTFH, FhArgs(fh))]) == (want(ok), Op.PUTFH)
            # PUTFH + PUTFH: only the last counts (§2.6.3.1.1.2).
            assert await status([(Op.PUTFH, FhArgs(fa if fh is fb else fb)), (Op.PUTFH, FhArgs(fh)), gattr]
                                ) == (want(ok), Op.GETATTR if ok else Op.PUTFH)
            # PUTFH + SAVEFH + ... + RESTOREFH: RESTOREFH is checked like a put (§2.6.3.1.1.1).
            assert await status([(Op.PUTFH, FhArgs(fh)), (Op.SAVEFH, V), (Op.PUTROOTFH, V), (Op.RESTOREFH, V),
                                 (Op.GETFH, V)]) == (want(ok), Op.GETFH if ok else Op.RESTOREFH)
            # PUTFH + LOOKUPP: the parent (the pseudo directory) decides (§2.6.3.1.1.4).
            assert await status([(Op.PUTFH, FhArgs(fh)), (Op.LOOKUPP, V), (Op.GETFH, V)]) == (
                want(ok_pseudo), Op.GETFH if ok_pseudo else Op.LOOKUPP)
            # PUTROOTFH/PUTFH + SECINFO_NO_NAME never WRONGSEC (§2.6.3.1.1.5); it consumes the fh.
            r = await c.seq_raw([(Op.PUTFH, FhArgs(fh)), (Op.SECINFO_NO_NAME, SecinfoNoNameArgs(0)), (Op.GETFH, V)])
            assert r.status == Stat.NOFILEHANDLE
            listed = _names(r.results[2][1].resok4)  # type: ignore[attr-defined]
            assert listed == _expected(name)
            # The SECINFO answer and the WRONGSEC decision agree for this flavor.
            assert (flavor in listed) == ok
            # SECINFO by name from the pseudo directory, in the export's order.
            r = await c.seq_raw([(Op.PUTFH, FhArgs(top)), (Op.SECINFO, NameArgs(name)), (Op.GETFH, V)])
            assert r.status == Stat.NOFILEHANDLE and _names(r.results[2][1].resok4) == listed  # type: ignore[attr-defined]
            # SECINFO_NO_NAME(PARENT) at the export root: the pseudo directory's union.
            r = await c.seq_raw([(Op.PUTFH, FhArgs(fh)), (Op.SECINFO_NO_NAME, SecinfoNoNameArgs(SecinfoStyle.PARENT))])
            assert r.status == 0 and set(_names(r.results[-1][1].resok4)) == {"krb5p", "krb5", "sys"}  # type: ignore[attr-defined]
        # LOOKUP inside export A from a put handle: refused before the lookup, so even a name
        # that does not exist gives WRONGSEC, not NOENT.
        for nm in (b"sub", b"no-such-name"):
            st = await status([(Op.PUTFH, FhArgs(fa)), (Op.LOOKUP, NameArgs(nm)), (Op.GETFH, V)])
            assert st[0] == (0 if ok_a and nm == b"sub" else Stat.NOENT if ok_a else Stat.WRONGSEC)
        assert (await status([(Op.PUTFH, FhArgs(fa_sub)), gattr]))[0] == want(ok_a)
        # Pseudo directories allow every flavor some export below them allows.
        assert await status([(Op.PUTFH, FhArgs(top)), gattr]) == (want(ok_pseudo), Op.GETATTR if ok_pseudo else Op.PUTFH)
        assert (await status([(Op.PUTROOTFH, V), (Op.LOOKUP, NameArgs(b"top"))]))[0] == want(ok_pseudo)
        # put + OPEN: OPEN decides (RFC 8881 §2.6.3.1.1), before looking at the name.
        oa = OpenArgs(0, 1, 0, StateOwner(c.clientid, b"w"), name=b"no-such-file")
        assert (await status([(Op.PUTFH, FhArgs(fa)), (Op.OPEN, oa)]))[0] == (Stat.NOENT if ok_a else Stat.WRONGSEC)
        await c.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def _names(entries: list[Any]) -> list[str]:
    out = []
    for e in entries:
        if e.flavor == RPCSEC_GSS_FLAVOR:
            gss = e.flavor_info
            assert gss.oid == KRB5_OID_DER and gss.qop == 0
            out.append({1: "krb5", 2: "krb5i", 3: "krb5p"}[gss.service])
        else:
            assert e.flavor == 1
            out.append("sys")
    return out


def _expected(name: bytes) -> list[str]:
    return ["krb5p"] if name == b"a" else ["krb5", "sys"]
