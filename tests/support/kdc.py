"""A real MIT Kerberos realm for tests (k5test), with the NFS service keytab.

The session fixture ``kdc_realm`` starts one KDC on free loopback ports and sets
``KRB5_CONFIG`` (and a private replay-cache directory) in ``os.environ`` so in-process
python-gssapi uses it.  k5test has no atexit handler of its own, so daemons are also killed
at interpreter exit if a test run is interrupted.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port_block


class KdcRealm:
    def __init__(self, realm: str = "KRBTEST.COM", **k5_kwargs: Any):
        from k5test import K5Realm

        self.k5 = K5Realm(
            realm=realm,
            portbase=free_port_block(),
            get_creds=False,
            start_kadmind=False,
            **k5_kwargs,
        )
        atexit.register(self._kill)
        self.realm: str = self.k5.realm
        self.tmpdir = Path(self.k5.tmpdir)
        self.krb5_conf = Path(self.k5.env["KRB5_CONFIG"])
        self.env: dict[str, str] = dict(self.k5.env)
        self.hostname: str = self.k5.hostname
        self.nfs_principal = f"nfs/{self.hostname}@{self.realm}"
        self.host_principal = f"host/{self.hostname}@{self.realm}"
        self.k5.addprinc(self.nfs_principal)
        self.service_keytab = self.tmpdir / "service.keytab"
        self.extract_keytab(self.nfs_principal, self.service_keytab)
        self.extract_keytab(self.host_principal, self.service_keytab)
        self._ccaches: dict[str, Path] = {}
        self._principals: set[str] = {"user", "user/admin"}

    def principal(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.realm}"

    def add_principal(self, name: str, password: str | None = None) -> str:
        princ = self.principal(name)
        self.k5.addprinc(princ, password)
        self._principals.add(princ.split("@")[0])
        return princ

    def extract_keytab(self, principal: str, path: str | os.PathLike[str]) -> Path:
        self.k5.extract_keytab(self.principal(principal), os.fspath(path))
        return Path(path)

    def user_ccache(self, name: str) -> Path:
        """A credential cache holding a TGT for ``name@REALM`` (created on first use)."""
        if name in self._ccaches:
            return self._ccaches[name]
        short = name.split("@")[0]
        password = self.k5.password(short.replace("/", "_"))
        if short not in self._principals:
            self.add_principal(short, password)
        elif short == "user":
            password = self.k5.password("user")
        ccache = self.tmpdir / f"ccache.{short.replace('/', '_')}"
        env = dict(self.env, KRB5CCNAME=f"FILE:{ccache}")
        self.k5.kinit(self.principal(short), password, env=env, verbose=False)
        self._ccaches[name] = ccache
        return ccache

    def activate(self) -> None:
        """Point this process's Kerberos library at this realm."""
        os.environ["KRB5_CONFIG"] = str(self.krb5_conf)
        os.environ["KRB5RCACHEDIR"] = str(self.tmpdir)

    def _kill(self) -> None:
        try:
            self.k5.kill_daemons()
        except (ProcessLookupError, OSError):
            pass

    def stop(self) -> None:
        self.k5.stop()


@pytest.fixture(scope="session")
def kdc_realm() -> Iterator[KdcRealm]:
    saved = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5RCACHEDIR")}
    realm = KdcRealm()
    realm.activate()
    try:
        yield realm
    finally:
        realm.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
