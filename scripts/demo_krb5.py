"""The Kerberos half of the demo: a throw-away MIT realm, a krb5p export, the preflight
report, the server started on it, and the project's client working as a Kerberos user.

Called by scripts/demo.py; everything lives under the directory it is given.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable


def _free_block(size: int = 10) -> int:
    for _ in range(200):
        base = random.randrange(20000, 60000 - size) // 10 * 10
        ok = True
        for p in range(base, base + size):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    try:
                        s.bind(("127.0.0.1", p))
                    except OSError:
                        ok = False
        if ok:
            return base
    raise SystemExit("demo: no free ports for the KDC")


def make_realm(base: Path):  # type: ignore[no-untyped-def]
    from k5test import K5Realm

    realm = K5Realm(portbase=_free_block(), get_creds=False)
    return realm


async def client_session(port: int, host: str, ccache: Path, service_name: str) -> list[str]:
    from securenfs.client.gss import GssClientAuth
    from securenfs.client.nfs4 import Nfs4Client
    from securenfs.client.rpc import RpcClient
    from securenfs.nfs4.constants import Attr
    from securenfs.rpc.constants import NFS_PROGRAM, NFS_V4
    from securenfs.rpcsec_gss.constants import GssService

    out: list[str] = []
    rpc = await RpcClient.connect("127.0.0.1", port)
    auth = await GssClientAuth.establish(rpc, NFS_PROGRAM, NFS_V4, f"nfs@{host}", ccache=str(ccache),
                                         service=GssService.PRIVACY)
    out.append(f"RPCSEC_GSS context established as {auth.ctx.initiator_name} (service: privacy = krb5p)")
    client = Nfs4Client(rpc, auth)
    try:
        fh = await client.mount("/secure")
        out.append("mounted /secure (EXCHANGE_ID, CREATE_SESSION, RECLAIM_COMPLETE, LOOKUP, SECINFO_NO_NAME)")
        sec = await client.secinfo_no_name(fh)
        names = {1: "krb5", 2: "krb5i", 3: "krb5p"}
        flavors = [names.get(e.service, "?") if e.flavor == 6 else {1: "sys"}.get(e.flavor, str(e.flavor))
                   for e in sec.entries]
        out.append(f"SECINFO_NO_NAME: the export accepts {', '.join(flavors)}")
        home = await client.lookup_path("/secure/alice")
        text = b"written by alice over krb5p\n" * 1000
        f = await client.open(home, "hello.txt", create=True)
        await client.write(f.fh, 0, text, f.stateid)
        back = await client.read(f.fh, 0, len(text) + 10, f.stateid)
        await client.close_file(f)
        ok = bytes(back.data) == text
        out.append(f"wrote {len(text)} bytes to /secure/alice/hello.txt (FILE_SYNC) and read them back: "
                   f"{'identical' if ok else 'DIFFERENT'}")
        if not ok:
            raise SystemExit("demo: data read back differs from what was written")
        entries = await client.readdir_all(home, attrs=[Attr.TYPE, Attr.FILEID, Attr.SIZE, Attr.OWNER, Attr.MODE])
        out.append("READDIR /secure/alice:")
        for _cookie, name, attrs in sorted(entries, key=lambda e: e[1]):
            owner = attrs.get(Attr.OWNER)
            owner_s = owner.decode() if isinstance(owner, bytes) else owner
            out.append(f"    {name.decode():12} {attrs.get(Attr.SIZE):>6} bytes  mode {attrs.get(Attr.MODE, 0):o}"
                       f"  owner {owner_s}")
        entries = await client.readdir_all(fh, attrs=[Attr.TYPE, Attr.FILEID, Attr.SIZE, Attr.OWNER, Attr.MODE])
        out.append("READDIR /secure:")
        for _cookie, name, attrs in sorted(entries, key=lambda e: e[1]):
            owner = attrs.get(Attr.OWNER)
            owner_s = owner.decode() if isinstance(owner, bytes) else owner
            out.append(f"    {name.decode():12} {attrs.get(Attr.SIZE):>6} bytes  mode {attrs.get(Attr.MODE, 0):o}"
                       f"  owner {owner_s}")
        await client.destroy_session()
        await client.destroy_clientid()
    finally:
        await client.close()
    return out


def run(base: Path) -> None:
    print("\n==> creating a throw-away Kerberos realm (MIT KDC on loopback)", flush=True)
    realm = make_realm(base)
    try:
        host = realm.hostname
        nfs_princ = f"nfs/{host}@{realm.realm}"
        realm.addprinc(nfs_princ)
        keytab = base / "krb5.keytab"
        realm.extract_keytab(nfs_princ, str(keytab))
        realm.addprinc(f"alice@{realm.realm}", "alice-password")
        ccache = base / "alice.ccache"
        env = dict(realm.env, KRB5CCNAME=f"FILE:{ccache}")
        realm.kinit(f"alice@{realm.realm}", "alice-password", env=env, verbose=False)
        print(f"realm {realm.realm}, service principal {nfs_princ}, user alice@{realm.realm}")

        secure = base / "secure"
        secure.mkdir()
        (secure / "report.txt").write_text("quarterly numbers\n")
        (secure / "notes").mkdir()
        os.chmod(secure, 0o755)
        (secure / "alice").mkdir()
        os.chown(secure / "alice", 5001, 5001)
        idmap_file = base / "idmap.static"
        idmap_file.write_text("user alice 5001 5001\ngroup alice 5001 alice\n")
        state = base / "state-krb5"
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        p = port.getsockname()[1]
        port.close()
        conf = base / "securenfs-krb5.toml"
        conf.write_text(f"""\
[server]
listen = ["127.0.0.1:{p}"]
state_dir = "{state}"
hostname = "{host}"
server_owner = "securenfs-demo"
server_scope = "demo.securenfs.invalid"

[kerberos]
keytab = "{keytab}"

[idmap]
domain = "{realm.realm.lower()}"
local_realms = ["{realm.realm}"]
backends = ["static", "nss"]

[idmap.static]
path = "{idmap_file}"

[[exports]]
path = "{secure}"
pseudo = "/secure"
sec = ["krb5p"]
""")
        senv = dict(os.environ, KRB5_CONFIG=realm.env["KRB5_CONFIG"], KRB5RCACHEDIR=str(base))
        print("\n==> preflight report for this host", flush=True)
        print("(DNS and /etc/hosts checks are skipped: the throw-away realm names this host "
              f"{host!r}, which is not a real FQDN; TIME-003: no NTP server is configured here)")
        print(f"$ securenfs preflight --config {conf} --skip DNS,HOSTS,TIME-003")
        pf = subprocess.run([PY, "-m", "securenfs", "preflight", "--config", str(conf), "--skip", "DNS,HOSTS,TIME-003"],
                            env=senv, capture_output=True, text=True)
        print(pf.stdout + pf.stderr, end="")

        print("\n==> starting the server with a krb5p-only export", flush=True)
        ready = base / "ready-krb5"
        log = (base / "server-krb5.log").open("w")
        proc = subprocess.Popen([PY, "-m", "securenfs", "serve", "--config", str(conf), "--ready-file", str(ready)],
                                env=senv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not (ready.exists() and ready.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    print((base / "server-krb5.log").read_text())
                    raise SystemExit("demo: the Kerberos server did not start")
                time.sleep(0.05)
            print(f"server pid {proc.pid} on 127.0.0.1:{p}; waiting for its start-up preflight "
                  "to switch the Kerberos flavors on")
            import json

            while True:
                st = subprocess.run([PY, "-m", "securenfs", "status", "--json", "--state-dir", str(state)],
                                    capture_output=True, text=True)
                if st.returncode == 0 and json.loads(st.stdout)["preflight"]["state"] == "done":
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("demo: the server's preflight did not finish")
                time.sleep(0.1)
            print("\n==> the project's client, as alice@" + realm.realm + ", over krb5p", flush=True)
            os.environ["KRB5_CONFIG"] = realm.env["KRB5_CONFIG"]
            for line in asyncio.run(client_session(p, host, ccache, nfs_princ)):
                print("  " + line)
            print("\n==> securenfs status", flush=True)
            st = subprocess.run([PY, "-m", "securenfs", "status", "--state-dir", str(state)],
                                capture_output=True, text=True)
            print(st.stdout + st.stderr, end="")
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
            log.close()
            print(f"\nserver exited with status {rc}; its log:")
            print((base / "server-krb5.log").read_text().rstrip())
    finally:
        realm.stop()
