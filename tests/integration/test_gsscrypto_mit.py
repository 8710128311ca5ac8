"""The fast path against MIT krb5 (python-gssapi) on a real KDC, for every supported enctype.

Our tokens must be accepted by gss_unwrap/gss_verify_mic and MIT's by ours, in both
directions (initiator to acceptor and back); tampered tokens must be rejected.
"""

from __future__ import annotations

import logging
import os

import gssapi
import pytest
from gssapi.raw import krb5_export_lucid_sec_context
from gssapi.raw.misc import GSSError

from securenfs.gsscrypto import BadToken, FastContext
from securenfs.gsscrypto.keysource import inquire_session_key
from tests.support.gss import context_pair
from tests.support.gsscrypto import EnctypeRealm

AES = [17, 18, 19, 20]
SIZES = [0, 1, 15, 16, 17, 4096, (1 << 20) + 3]


@pytest.fixture(scope="module")
def contexts(enctype_realm: EnctypeRealm) -> dict[int, tuple]:
    """Per enctype: (MIT initiator, MIT acceptor, fast initiator, fast acceptor)."""
    out = {}
    for et in AES:
        init, acc = enctype_realm.context_pair(et)
        fi = FastContext.from_gss(init)
        fa = FastContext.from_gss(acc)
        assert fi is not None and fa is not None, et
        out[et] = (init, acc, fi, fa)
    return out


@pytest.mark.parametrize("enctype", AES)
def test_fast_context_has_the_negotiated_enctype(contexts: dict, enctype: int) -> None:
    _init, _acc, fi, fa = contexts[enctype]
    assert fi.enctype_number == fa.enctype_number == enctype
    assert fi.initiator and not fa.initiator
    assert fi.acceptor_subkey and fa.acceptor_subkey  # MIT asserts one with mutual auth


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("enctype", AES)
def test_cross_check_with_mit(contexts: dict, enctype: int, size: int) -> None:
    init, acc, fi, fa = contexts[enctype]
    msg = os.urandom(size)
    for mit_peer, fast_self, mit_self, fast_peer in ((init, fa, acc, fi), (acc, fi, init, fa)):
        for conf in (True, False):
            # ours -> MIT
            res = mit_peer.unwrap(fast_self.wrap(msg, conf))
            assert res.message == msg and res.encrypted == conf
            # MIT -> ours
            assert fast_peer.unwrap(mit_self.wrap(msg, conf).message) == (msg, conf)
        mit_peer.verify_signature(msg, fast_self.get_mic(msg))
        fast_peer.verify_mic(msg, mit_self.get_signature(msg))


@pytest.mark.parametrize("enctype", AES)
def test_tampered_mit_tokens_are_rejected_at_every_byte(contexts: dict, enctype: int) -> None:
    init, _acc, _fi, fa = contexts[enctype]
    msg = b"RPCSEC_GSS body!" + b"x"
    tokens = [
        ("wrap", init.wrap(msg, True).message),
        ("wrap", init.wrap(msg, False).message),
        ("mic", init.get_signature(msg)),
    ]
    for kind, token in tokens:
        for i in range(len(token)):
            bad = bytearray(token)
            bad[i] ^= 0x01
            with pytest.raises(BadToken):
                if kind == "wrap":
                    fa.unwrap(bytes(bad))
                else:
                    fa.verify_mic(msg, bytes(bad))
        # And the untouched token still passes: the rejections were not for other reasons.
        if kind == "wrap":
            assert fa.unwrap(token)[0] == msg
        else:
            fa.verify_mic(msg, token)


@pytest.mark.parametrize("enctype", AES)
def test_tampered_fast_tokens_are_rejected_by_mit(contexts: dict, enctype: int) -> None:
    init, _acc, _fi, fa = contexts[enctype]
    token = fa.wrap(b"hello", True)
    for i in (2, 8, 16, len(token) // 2, len(token) - 1):
        bad = bytearray(token)
        bad[i] ^= 0x01
        with pytest.raises(GSSError):
            init.unwrap(bytes(bad))


@pytest.mark.parametrize("enctype", AES)
def test_gss_context_keeps_working_after_from_gss(
    enctype_realm: EnctypeRealm,
    enctype: int,
) -> None:
    init, acc = enctype_realm.context_pair(enctype)
    assert FastContext.from_gss(acc) is not None
    assert FastContext.from_gss(init) is not None
    assert acc.unwrap(init.wrap(b"fallback", True).message).message == b"fallback"
    assert init.unwrap(acc.wrap(b"fallback", True).message).message == b"fallback"
    acc.verify_signature(b"m", init.get_signature(b"m"))


@pytest.mark.parametrize("enctype", [18, 19])
def test_lucid_export_destroys_the_mit_context_and_agrees_with_the_probe(
    enctype_realm: EnctypeRealm,
    enctype: int,
) -> None:
    """Why the fast path uses the session-key inquiry: MIT 1.20 deletes a context whose
    lucid form was exported.  The export (of a throwaway context) also confirms what the
    inquiry and the probe MIC derived: the acceptor subkey and the next send number."""
    _init, acc = enctype_realm.context_pair(enctype)
    fast = FastContext.from_gss(acc)
    assert fast is not None
    key = inquire_session_key(acc)
    lucid = krb5_export_lucid_sec_context(acc, 1)
    kd = lucid.cfx_kd
    assert lucid.protocol == 1 and not lucid.is_initiator
    assert kd.acceptor_subkey == key.key and kd.acceptor_subkey_type == enctype
    assert lucid.send_seq == int.from_bytes(fast.get_mic(b"")[8:16], "big")
    with pytest.raises(GSSError):
        acc.wrap(b"after export", True)


def test_without_mutual_auth_the_initiator_subkey_is_used(
    enctype_realm: EnctypeRealm,
) -> None:
    init, acc = enctype_realm.context_pair(18, mutual=False)
    fi = FastContext.from_gss(init)
    fa = FastContext.from_gss(acc)
    assert fi is not None and fa is not None
    assert not fi.acceptor_subkey and not fa.acceptor_subkey
    assert acc.unwrap(fi.wrap(b"abc")).message == b"abc"
    assert fi.unwrap(acc.wrap(b"def", True).message) == (b"def", True)
    assert fa.unwrap(init.wrap(b"ghi", True).message) == (b"ghi", True)


def test_unsupported_enctype_falls_back_with_a_reason(
    enctype_realm: EnctypeRealm,
    caplog: pytest.LogCaptureFixture,
) -> None:
    init, acc = enctype_realm.context_pair(26)  # camellia256-cts-cmac
    with caplog.at_level(logging.INFO, logger="securenfs.gsscrypto"):
        assert FastContext.from_gss(acc) is None
    assert "enctype 26 is not one of" in caplog.text
    # The GSS context was not touched: the fallback path works.
    assert init.unwrap(acc.wrap(b"still fine", True).message).message == b"still fine"


def test_unestablished_context_falls_back(
    enctype_realm: EnctypeRealm,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = gssapi.SecurityContext(
        name=gssapi.Name("nfs@localhost", gssapi.NameType.hostbased_service), usage="initiate"
    )
    with caplog.at_level(logging.INFO, logger="securenfs.gsscrypto"):
        assert FastContext.from_gss(ctx) is None
    assert "not established" in caplog.text


def test_shared_realm_default_context(kdc_realm) -> None:
    """With the project's default realm (no enctype settings) the fast path engages."""
    init, acc = context_pair(f"FILE:{kdc_realm.user_ccache('user')}", kdc_realm.service_keytab,
                             f"nfs@{kdc_realm.hostname}")
    fa = FastContext.from_gss(acc)
    assert fa is not None and fa.enctype == "aes256-cts-hmac-sha1-96"
    assert init.unwrap(fa.wrap(b"reply")).message == b"reply"
    assert fa.unwrap(init.wrap(b"call", True).message) == (b"call", True)
