"""Shared, lazily computed facts for one preflight run (DNS answers, krb5.conf, keytab ...).

Several checks look at the same fact (the keytab's entries, the KDC probe); each fact is
computed once per run, by whichever check needs it first, under a per-fact lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from preflight.result import Result
from preflight.settings import PreflightSettings

T = TypeVar("T")


class RunContext:
    def __init__(self, settings: PreflightSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._memo: dict[str, Any] = {}
        self.results: dict[str, list[Result]] = {}  # finished checks, by id

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
            value: T = self._memo[key]
            return value

    # -- common facts ---------------------------------------------------------------------------
    @property
    def fqdn(self) -> str:
        return self.settings.fqdn()

    @property
    def realm(self) -> str:
        if self.settings.realm:
            return self.settings.realm
        from preflight.krb5conf import load_krb5_conf

        conf = self.memo("krb5conf", lambda: load_krb5_conf(self.settings.krb5_conf_path()))
        return conf.default_realm if conf.ok else ""

    def principals(self) -> list[str]:
        if self.settings.principals:
            return list(self.settings.principals)
        return [f"nfs/{self.fqdn}@{self.realm}"]
