"""A KDC whose contexts can be forced to any AES enctype, for the gsscrypto tests and bench.

MIT picks a context's enctype from the client's krb5.conf and the service's keys, so each
enctype gets a service principal holding only that key type and a krb5.conf variant
limiting the client to it.  ``KRB5_CONFIG`` is switched only while a context is being
established; established contexts do not read it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.support.gss import context_pair
from tests.support.kdc import KdcRealm

ENCTYPE_NAMES: dict[int, str] = {
    17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    26: "camellia256-cts-cmac",  # a krb5 enctype the fast path does not implement
}
SUPPORTED = " ".join(f"{name}:normal" for name in ENCTYPE_NAMES.values())


@contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class EnctypeRealm:
    def __init__(self) -> None:
        self.kdc = KdcRealm(
            realm="GSSCRYPTO.TEST",
            kdc_conf={"realms": {"$realm": {"supported_enctypes": SUPPORTED}}},
        )
        self.tmpdir: Path = self.kdc.tmpdir
        self._made: set[int] = set()

    def _prepare(self, enctype: int) -> tuple[str, Path, Path, Path]:
        name = ENCTYPE_NAMES[enctype]
        service = f"gsscrypto{enctype}/{self.kdc.hostname}@{self.kdc.realm}"
        keytab = self.tmpdir / f"gsscrypto{enctype}.keytab"
        conf = self.tmpdir / f"krb5.gsscrypto{enctype}.conf"
        ccache = self.tmpdir / f"ccache.gsscrypto{enctype}"
        if enctype not in self._made:
            self.kdc.k5.run_kadminl(f"addprinc -randkey -e {name}:normal {service}")
            self.kdc.extract_keytab(service, keytab)
            only = f"\tpermitted_enctypes = {name}\n\tdefault_tkt_enctypes = {name}\n"
            only += f"\tdefault_tgs_enctypes = {name}\n"
            text = self.kdc.krb5_conf.read_text().replace(
                "[libdefaults]\n", "[libdefaults]\n" + only, 1
            )
            conf.write_text(text)
            env = dict(self.kdc.env, KRB5_CONFIG=str(conf), KRB5CCNAME=f"FILE:{ccache}")
            self.kdc.k5.kinit(
                self.kdc.principal("user"), self.kdc.k5.password("user"), env=env, verbose=False
            )
            self._made.add(enctype)
        return service, keytab, conf, ccache

    def service_for(self, enctype: int) -> tuple[str, Path, Path, Path]:
        """(service principal, its keytab, a krb5.conf limited to ``enctype``, a user ccache).

        A client whose ``KRB5_CONFIG`` is that krb5.conf while it establishes a context with
        the service gets a context of ``enctype``.
        """
        return self._prepare(enctype)

    def client_env(self, enctype: int) -> AbstractContextManager[None]:
        """Switch ``KRB5_CONFIG`` (and the replay cache directory) to the variant of ``enctype``."""
        _service, _keytab, conf, _ccache = self._prepare(enctype)
        return _env(KRB5_CONFIG=str(conf), KRB5RCACHEDIR=str(self.tmpdir))

    def context_pair(self, enctype: int, mutual: bool = True) -> tuple[object, object]:
        """A fresh (initiator, acceptor) pair of established python-gssapi contexts."""
        service, keytab, conf, ccache = self._prepare(enctype)
        with _env(KRB5_CONFIG=str(conf), KRB5RCACHEDIR=str(self.tmpdir)):
            return context_pair(f"FILE:{ccache}", keytab, service, hostbased=False, mutual=mutual)

    def stop(self) -> None:
        self.kdc.stop()


@pytest.fixture(scope="session")
def enctype_realm() -> Iterator[EnctypeRealm]:
    realm = EnctypeRealm()
    try:
        yield realm
    finally:
        realm.stop()
