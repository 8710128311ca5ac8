"""Reload of [[exports]] without a restart (SIGHUP and `securenfs reload`) against the real
server process: clients keep their sessions and opens, and a bad configuration changes nothing."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from securenfs.client.nfs4 import Nfs4Client, Nfs4Error
from securenfs.client.rpc import AuthSys
from securenfs.proto.constants import Stat
from tests.support.kdc import KdcRealm
from tests.support.serveproc import (
    krb5p_client,
    reload,
    serve_process,
    served,
    status,
    stop,
    wait_ready,
)

READ = 1  # OPEN4_SHARE_ACCESS_READ


def exports_toml(tmp_path: Path, *exports: tuple[str, str, list[str]], extra: str = "") -> Path:
    """A config file with these (directory name, pseudo path, flavors) exports."""
    lines = [extra]
    for name, pseudo, sec in exports:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        (d / "file").write_text(f"data of {pseudo}")
        lines += ["[[exports]]", f'path = "{d}"', f'pseudo = "{pseudo}"', f"sec = {json.dumps(sec)}",
                  "[[exports.clients]]", 'match = "127.0.0.1"', 'squash = "none"', ""]
    conf = tmp_path / "securenfs.toml"
    conf.write_text("\n".join(lines))
    return conf


async def sys_client(port: int) -> Nfs4Client:
    client = await Nfs4Client.connect("127.0.0.1", port, AuthSys(uid=0, gid=0))
    await client.establish()
    await client.reclaim_complete()
    return client


def test_reload_adds_removes_and_narrows_exports_while_clients_keep_their_opens(kdc_realm: KdcRealm,
                                                                                tmp_path: Path) -> None:
    conf = exports_toml(tmp_path, ("keep", "/keep", ["krb5p", "sys"]), ("old", "/old", ["sys"]))
    proc = serve_process(tmp_path, kdc_realm, kdc_realm.service_keytab, "--config", str(conf), "--no-preflight")

    async def run(port: int) -> None:
        holder = await sys_client(port)
        krb = await krb5p_client(port, kdc_realm)
        try:
            keep = await holder.lookup_path("/keep")
            f = await holder.open(keep, "file", access=READ)
            old_root = await holder.lookup_path("/old")
            await krb.mount("/keep")

            # /keep narrowed to sys, /old removed, /new added.
            exports_toml(tmp_path, ("keep", "/keep", ["sys"]), ("new", "/new", ["sys"]))
            out = await asyncio.to_thread(reload, tmp_path)
            assert out.returncode == 0, out.stderr
            assert served(tmp_path) == {"/keep": ["sys"], "/new": ["sys"]}

            # The open made before the reload still reads through its stateid.
            assert bytes((await holder.read(f.fh, 0, 100, f.stateid)).data) == b"data of /keep"
            # RFC 8881 §15.1.2: a handle of a removed export is no longer valid: NFS4ERR_STALE.
            with pytest.raises(Nfs4Error) as stale:
                await holder.getattr(old_root)
            assert stale.value.status == Stat.STALE
            # The added export is in the pseudo file system (LOOKUP and READDIR of the root).
            new = await holder.lookup_path("/new/file")
            assert bytes((await holder.read(new, 0, 100)).data) == b"data of /new"
            names = {name for _, name, _ in await holder.readdir_all(await holder.lookup_path("/"))}
            assert names == {b"keep", b"new"}
            # RFC 8881 §2.6.3.1: the krb5p client's next request on /keep gets WRONGSEC,
            # and SECINFO_NO_NAME now offers only AUTH_SYS.
            with pytest.raises(Nfs4Error) as wrongsec:
                await krb.lookup_path("/keep")
            assert wrongsec.value.status == Stat.WRONGSEC
            info = await holder.secinfo_no_name(keep)
            assert [e.flavor for e in info.resok4 or []] == [1]
        finally:
            await holder.close()
            await krb.close()

    try:
        asyncio.run(run(wait_ready(proc, tmp_path / "ready")))
    finally:
        err = stop(proc)
    assert "reload: exports added ['/new'], removed ['/old'], changed ['/keep']" in err


def test_bad_reload_changes_nothing_and_says_why(kdc_realm: KdcRealm, tmp_path: Path) -> None:
    conf = exports_toml(tmp_path, ("a", "/a", ["sys"]))
    proc = serve_process(tmp_path, kdc_realm, kdc_realm.service_keytab, "--config", str(conf), "--no-preflight")

    async def read_a(port: int) -> bytes:
        client = await sys_client(port)
        try:
            return bytes((await client.read(await client.lookup_path("/a/file"), 0, 100)).data)
        finally:
            await client.close()

    async def write_a(port: int) -> int:
        client = await sys_client(port)
        try:
            await client.write(await client.lookup_path("/a/file"), 0, b"x")
            return 0
        except Nfs4Error as exc:
            return exc.status
        finally:
            await client.close()

    try:
        port = wait_ready(proc, tmp_path / "ready")
        assert asyncio.run(write_a(port)) == 0  # writes "x" over the first byte
        good = conf.read_text()
        # An export path that does not exist.
        conf.write_text(good + f'[[exports]]\npath = "{tmp_path}/missing"\npseudo = "/b"\nsec = ["sys"]\n')
        out = reload(tmp_path)
        assert out.returncode == 1
        assert "refused, nothing changed" in out.stderr and "/b" in out.stderr and "does not exist" in out.stderr
        # An unknown key: named, with the section.
        conf.write_text(good.replace('sec = ["sys"]', 'sec = ["sys"]\nsecurity = "krb5p"'))
        out = reload(tmp_path)
        assert out.returncode == 1 and "security" in out.stderr
        assert served(tmp_path) == {"/a": ["sys"]}
        assert asyncio.run(read_a(port)) == b"xata of /a"

        # Kerberos cannot be added to a server started without it.
        conf.write_text(good.replace('["sys"]', '["sys", "krb5i"]'))
        out = reload(tmp_path)
        assert out.returncode == 1 and "started without Kerberos; restart it" in out.stderr
        assert served(tmp_path) == {"/a": ["sys"]}

        # A key that cannot change live is named in a warning; the live part still applies.
        conf.write_text("[server]\nlease_time = 45\n" + good.replace('squash = "none"', 'squash = "none"\naccess = "ro"'))
        proc.send_signal(signal.SIGHUP)
        out = reload(tmp_path)
        assert out.returncode == 0, out.stderr
        assert "server.lease_time changed; it takes effect only after a restart" in out.stderr
        assert asyncio.run(read_a(port)) == b"xata of /a"
        assert asyncio.run(write_a(port)) == Stat.ROFS  # the client rule is now read-only
        assert "[on ] /a" in status(tmp_path).stdout
    finally:
        err = stop(proc)
    assert "reload refused, nothing changed" in err
