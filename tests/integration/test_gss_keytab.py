"""Keytab problems, ticket expiry, context table bounds and GSS error translation, for real."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import gssapi
import pytest

from securenfs.client.gss import GssClientAuth, GssClientError
from securenfs.client.rpc import AuthNone, RpcClient, RpcError
from securenfs.rpc.constants import AuthStat
from securenfs.rpcsec_gss.acceptor import Acceptor
from securenfs.rpcsec_gss.constants import GssService
from securenfs.rpcsec_gss.gsserrors import Cause, translate_exception
from securenfs.rpcsec_gss.handler import GssSettings, RpcsecGssHandler
from securenfs.rpcsec_gss.table import TableLimits
from securenfs.server import StartupError
from tests.support.gss import ECHO_PROG, ECHO_VERS, PROC_ECHO, GssServer, gss_config
from tests.support.kdc import KdcRealm

pytestmark = pytest.mark.timeout(120)


def _initiate(kdc: KdcRealm, ccache: str | Path, target: str) -> gssapi.SecurityContext:
    creds = gssapi.Credentials(usage="initiate", store={"ccache": str(ccache)})
    return gssapi.SecurityContext(name=gssapi.Name(target, gssapi.NameType.kerberos_principal), creds=creds,
                                  usage="initiate", mech=gssapi.MechType.kerberos)


def _accept_error(keytab: Path, token: bytes) -> BaseException:
    acred = gssapi.Credentials(usage="accept", store={"keytab": str(keytab)})
    with pytest.raises(gssapi.exceptions.GSSError) as ei:
        gssapi.SecurityContext(creds=acred, usage="accept").step(token)
    return ei.value


def test_startup_names_the_missing_principal(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    kt = tmp_path / "other.keytab"
    kdc_realm.add_principal("nfs/elsewhere.test")
    kdc_realm.extract_keytab("nfs/elsewhere.test", kt)
    srv_cfg = gss_config(tmp_path, kt, kdc_realm.hostname)
    with pytest.raises(StartupError) as ei:
        GssServer(srv_cfg)
    text = str(ei.value)
    assert f"nfs/{kdc_realm.hostname}" in text and "nfs/elsewhere.test@" in text
    assert "kvno 1" in text and "aes256-cts-hmac-sha1-96" in text


def test_startup_with_unreadable_keytab(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="no such file"):
        GssServer(gss_config(tmp_path, tmp_path / "missing.keytab", kdc_realm.hostname))


def test_stale_keytab_kvno_is_refused_cleanly(kdc_realm: KdcRealm, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    princ = kdc_realm.add_principal("nfs/stale.test")
    old = kdc_realm.extract_keytab(princ, tmp_path / "old.keytab")  # kvno 1
    # Re-key at the KDC (kvno 2) without updating the server's keytab.
    kdc_realm.k5.run_kadminl(f"ktadd -k {tmp_path / 'new.keytab'} {princ}")
    srv = GssServer(gss_config(tmp_path, old, kdc_realm.hostname, principals=["nfs/stale.test"]))
    ccache = kdc_realm.user_ccache("carol")

    async def go() -> None:
        c = await RpcClient.connect(srv.host, srv.port)
        with pytest.raises(GssClientError) as ei:
            await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, princ, ccache=str(ccache))
        assert "kvno" in str(ei.value)
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"still here", AuthNone())) == b"still here"
        await c.close()

    try:
        with caplog.at_level(logging.WARNING, "securenfs"):
            asyncio.run(go())
    finally:
        srv.close()
    assert "kvno 2 not found in keytab" in caplog.text
    assert "likely cause: kvno mismatch" in caplog.text
    assert "nfs/stale.test@" in caplog.text and "kvno 1" in caplog.text  # what the keytab holds


def test_ticket_for_a_principal_the_keytab_lacks(kdc_realm: KdcRealm, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    princ = kdc_realm.add_principal("nfs/nothere.test")
    kt = kdc_realm.extract_keytab(princ, tmp_path / "nothere.keytab")
    srv = GssServer(gss_config(tmp_path, kt, kdc_realm.hostname, principals=["nfs/nothere.test"]))
    ccache = kdc_realm.user_ccache("dave")

    async def go() -> None:
        c = await RpcClient.connect(srv.host, srv.port)
        with pytest.raises(GssClientError):
            await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs/{kdc_realm.hostname}@{kdc_realm.realm}",
                                          ccache=str(ccache))
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"x", AuthNone())) == b"x"
        await c.close()

    try:
        with caplog.at_level(logging.WARNING, "securenfs"):
            asyncio.run(go())
    finally:
        srv.close()
    assert "likely cause: missing principal" in caplog.text
    assert f"nfs/{kdc_realm.hostname}@{kdc_realm.realm} not found in keytab" in caplog.text


def test_translation_of_a_garbage_token(kdc_realm: KdcRealm) -> None:
    f = translate_exception(_accept_error(kdc_realm.service_keytab, b"\x60\x05\x06\x03\x2a\x03\x04"))
    assert f.cause is Cause.BAD_TOKEN, f.describe()


def test_expired_ticket_ends_the_context(kdc_realm: KdcRealm, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    ccache = tmp_path / "short.ccache"
    env = dict(kdc_realm.env, KRB5CCNAME=f"FILE:{ccache}")
    kdc_realm.k5.kinit(kdc_realm.k5.user_princ, kdc_realm.k5.password("user"), flags=["-l", "3s"], env=env,
                       verbose=False)
    srv = GssServer(gss_config(tmp_path, kdc_realm.service_keytab, kdc_realm.hostname))

    async def go() -> None:
        c = await RpcClient.connect(srv.host, srv.port)
        auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}",
                                             ccache=str(ccache), service=GssService.INTEGRITY)
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"fresh", auth)) == b"fresh"
        ctx = next(iter(srv.handler.table))
        assert ctx.expires_at - time.monotonic() <= 3.5
        await asyncio.sleep(max(0.0, ctx.expires_at - time.monotonic()) + 0.3)
        with pytest.raises(RpcError) as ei:
            await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"stale", auth)
        assert ei.value.reply.auth_stat == AuthStat.RPCSEC_GSS_CREDPROBLEM
        assert len(srv.handler.table) == 0
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"ok", AuthNone())) == b"ok"
        await c.close()

    try:
        with caplog.at_level(logging.INFO, "securenfs"):
            asyncio.run(go())
    finally:
        srv.close()
    assert "ticket behind this context has expired" in caplog.text


def test_thousand_abandoned_contexts_stay_bounded_and_are_reaped(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    srv = GssServer(gss_config(tmp_path, kdc_realm.service_keytab, kdc_realm.hostname))
    acceptor = Acceptor.load(kdc_realm.service_keytab, [], kdc_realm.hostname)
    cap = 150
    handler = RpcsecGssHandler(acceptor, srv.server.executor,
                               TableLimits(max_contexts=1000, max_per_peer=cap, idle_timeout=1.0),
                               GssSettings(reap_interval=0.25))
    srv.replace_handler(handler)
    ccache = str(kdc_realm.user_ccache("frank"))
    creds = gssapi.Credentials(usage="initiate", store={"ccache": ccache})

    async def go() -> None:
        c = await RpcClient.connect(srv.host, srv.port)
        sizes = []
        for i in range(1000):
            auth = await GssClientAuth.establish(c, ECHO_PROG, ECHO_VERS, f"nfs@{kdc_realm.hostname}", creds=creds)
            if i % 100 == 0:
                sizes.append(srv.call_soon(len, handler.table))
        assert max(sizes) <= cap
        assert srv.call_soon(len, handler.table) == cap
        assert handler.table.stats.evicted_peer == 1000 - cap
        # The newest context still works; evicted ones get CREDPROBLEM.
        assert bytes(await c.call(ECHO_PROG, ECHO_VERS, PROC_ECHO, b"last", auth)) == b"last"
        await asyncio.sleep(2.0)  # idle timeout 1 s, reaper every 0.25 s
        assert srv.call_soon(len, handler.table) == 0
        assert handler.table.stats.idle_reaped >= cap
        await c.close()

    try:
        asyncio.run(go())
    finally:
        srv.close()


def test_default_principals_are_what_check_config_prints(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    """With kerberos.principals unset, a keytab holding only host/<hostname> serves: the
    acceptor's names are the ones `securenfs check-config` prints."""
    from securenfs.config import Config, dump

    kt = kdc_realm.extract_keytab(kdc_realm.host_principal, tmp_path / "host-only.keytab")
    acceptor = Acceptor.load(kt, [], kdc_realm.hostname)
    cfg = Config()
    cfg.server.hostname = kdc_realm.hostname
    assert [str(n) for n in acceptor.allowed] == cfg.acceptor_principals()
    assert cfg.acceptor_principals() == [f"nfs/{kdc_realm.hostname}", f"host/{kdc_realm.hostname}"]
    assert f"nfs/{kdc_realm.hostname} and host/{kdc_realm.hostname} of any realm" in dump(cfg)
