"""The fast path inside RPCSEC_GSS without a KDC: failure translation, stats, status fields,
the test switch and the malloc tuning."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

import pytest

from securenfs.gsscrypto import FastContext, tune_malloc_for_large_buffers
from securenfs.rpcsec_gss.constants import GSS_S_BAD_SIG, GSS_S_DEFECTIVE_TOKEN
from securenfs.rpcsec_gss.context import GssContext
from securenfs.rpcsec_gss.gsserrors import Cause
from securenfs.rpcsec_gss.handler import MAX_REASONS, GssSettings, RpcsecGssHandler
from securenfs.rpcsec_gss.protection import (
    FAST_PATH_OFF,
    Engine,
    OpenSslProtection,
    ProtectionError,
    ProtectionInfo,
    choose_protection,
)
from securenfs.rpcsec_gss.seqwindow import SeqWindow
from tests.support.gss import FAST_PATH_ENV, apply_test_fast_path, test_fast_path

ENCTYPES = [17, 18, 19, 20]


def pair(enctype: int) -> tuple[OpenSslProtection, OpenSslProtection]:
    """(client, server) protections sharing one random session key."""
    key = os.urandom(16 if enctype in (17, 19) else 32)
    client = FastContext(enctype, key, initiator=True, acceptor_subkey=True)
    server = FastContext(enctype, key, initiator=False, acceptor_subkey=True)
    return OpenSslProtection(client), OpenSslProtection(server)


@pytest.mark.parametrize("enctype", ENCTYPES)
def test_round_trip_both_directions(enctype: int) -> None:
    c, s = pair(enctype)
    msg = os.urandom(5000)
    s.verify_mic(msg, c.get_mic(msg))
    c.verify_mic(msg, s.get_mic(msg))
    assert s.unwrap(c.wrap(msg)) == msg
    assert c.unwrap(memoryview(s.wrap(msg))) == msg


@pytest.mark.parametrize("enctype", ENCTYPES)
def test_altered_tokens_fail_like_the_gss_library(enctype: int) -> None:
    c, s = pair(enctype)
    msg = b"seq and args" * 10
    mic = bytearray(c.get_mic(msg))
    mic[-1] ^= 1
    with pytest.raises(ProtectionError) as ei:
        s.verify_mic(msg, bytes(mic))
    assert ei.value.failure.major == GSS_S_BAD_SIG and ei.value.failure.cause is Cause.BAD_SIGNATURE
    tok = bytearray(c.wrap(msg))
    tok[40] ^= 1
    with pytest.raises(ProtectionError) as ei:
        s.unwrap(bytes(tok))
    assert ei.value.failure.major == GSS_S_BAD_SIG
    with pytest.raises(ProtectionError) as ei:
        s.unwrap(c.wrap(msg)[:10])
    assert ei.value.failure.major == GSS_S_DEFECTIVE_TOKEN and ei.value.failure.cause is Cause.BAD_TOKEN


def test_own_tokens_reflected_back_are_rejected() -> None:
    c, s = pair(18)
    msg = b"reflected"
    with pytest.raises(ProtectionError):
        s.verify_mic(msg, s.get_mic(msg))
    with pytest.raises(ProtectionError):
        s.unwrap(s.wrap(msg))


def test_privacy_requires_an_encrypted_token() -> None:
    c, s = pair(20)
    signed_only = c.fast.wrap(b"plain but signed", confidential=False)
    with pytest.raises(ProtectionError, match="not encrypted"):
        s.unwrap(signed_only)


def test_fast_path_off_keeps_mit_and_says_so() -> None:
    ctx = mock.Mock()
    ctx.actual_flags = set()
    with mock.patch("securenfs.rpcsec_gss.protection.session_enctype", return_value=18), \
            mock.patch("securenfs.rpcsec_gss.protection.choose_fast_path") as choose:
        chosen = choose_protection(ctx, fast_path=False)
    choose.assert_not_called()
    assert chosen.protection.kind == "gssapi" and chosen.first_mic is None
    assert chosen.info == ProtectionInfo(Engine.MIT, "aes256-cts-hmac-sha1-96", FAST_PATH_OFF)


def _handler() -> RpcsecGssHandler:
    return RpcsecGssHandler(mock.Mock(), settings=GssSettings(fast_path=True))


def test_stats_count_engines_and_bound_reasons() -> None:
    h = _handler()
    h._count_protection(Engine.OPENSSL, "")
    for i in range(MAX_REASONS + 10):
        h._count_protection(Engine.MIT, f"reason {i}")
    h._count_protection(Engine.MIT, "reason 0")
    p = h.stats()["protection"]
    assert p["contexts_openssl"] == 1 and p["contexts_mit"] == MAX_REASONS + 11
    assert p["mit_reasons"]["reason 0"] == 2
    assert p["mit_reasons"]["other"] == 10
    assert len(p["mit_reasons"]) == MAX_REASONS + 1
    assert h.stats()["fast_path"] is True


def test_context_summary_names_engine_enctype_and_reason() -> None:
    ctx = GssContext(handle=b"\x01" * 16, peer="127.0.0.1", created=0.0, last_used=0.0, expires_at=1.0,
                     window=SeqWindow(8))
    assert ctx.describe()["protection"] is None
    ctx.protection = mock.Mock(kind="libgss")
    ctx.protection_info = ProtectionInfo(Engine.MIT, "camellia256-cts-cmac", "enctype 26 is not one of ...")
    d: dict[str, Any] = ctx.describe()
    assert d["protection"] == "mit" and d["implementation"] == "libgss"
    assert d["enctype"] == "camellia256-cts-cmac"
    assert d["fast_path_not_used_because"].startswith("enctype 26")


@pytest.mark.parametrize("value,expected", [("1", True), ("0", False), ("off", False), ("yes", True)])
def test_test_switch(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(FAST_PATH_ENV, value)
    assert test_fast_path() is expected
    cfg = mock.Mock()
    assert apply_test_fast_path(cfg).kerberos.fast_path is expected
    assert apply_test_fast_path(cfg, not expected).kerberos.fast_path is (not expected)


def test_test_switch_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAST_PATH_ENV, "maybe")
    with pytest.raises(ValueError, match="use 1 or 0"):
        test_fast_path()


def test_test_switch_default_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAST_PATH_ENV, raising=False)
    assert test_fast_path() is True


def test_malloc_tuning_applies_on_glibc() -> None:
    t = tune_malloc_for_large_buffers()
    assert t.applied, t.detail
    assert "64 MiB" in t.detail and "256 MiB" in t.detail
