"""RPCSEC_GSS initiator (RFC 2203) for the project's RPC client.

``await GssClientAuth.establish(client, prog, vers, ...)`` runs INIT/CONTINUE_INIT with
python-gssapi, checks the final verifier (MIC over seq_window) and returns a
:class:`~securenfs.client.rpc.ClientAuth` that signs call headers, protects arguments per
service (none / integrity / privacy) and checks and unwraps replies.

By default the initiator requests only mutual authentication, integrity and confidentiality:
replay and sequence detection at the GSS layer reject valid out-of-order tokens, and
RPCSEC_GSS has its own window.  ``extra_flags`` lets tests behave like clients that ask for
them anyway.

``fast_path=True`` computes this side's per-message tokens with OpenSSL
(:mod:`securenfs.gsscrypto`) once the context is established, as the server does with
``kerberos.fast_path``; contexts it cannot serve stay on python-gssapi.  The switch to it
happens at the first call, whose header MIC is the probe that hands the sequence number
over (so the server sees no gap).  Benchmarks use it to measure both ends on the fast path,
and tests to mix the two paths across client and server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gssapi
from gssapi.raw.misc import GSSError

from securenfs.client.rpc import Buffer, RpcClient, RpcError, check_reply
from securenfs.gsscrypto import BadToken, FastContext, choose_fast_path
from securenfs.rpc import message as msg
from securenfs.rpc.constants import AuthFlavor
from securenfs.rpcsec_gss import wire
from securenfs.rpcsec_gss.constants import (
    GSS_S_COMPLETE,
    GSS_S_CONTINUE_NEEDED,
    GssProc,
    GssService,
)
from securenfs.rpcsec_gss.gsserrors import GssFailure, translate
from securenfs.xdr import XdrError


class GssClientError(Exception):
    """Context establishment or reply protection failed.

    ``failure`` is the server's GSS status in words when the server refused the context.
    """

    def __init__(self, text: str, failure: GssFailure | None = None):
        super().__init__(text)
        self.failure = failure


@dataclass(slots=True)
class _CallState:
    seq: int
    service: GssService


DEFAULT_FLAGS = (
    gssapi.RequirementFlag.mutual_authentication,
    gssapi.RequirementFlag.integrity,
    gssapi.RequirementFlag.confidentiality,
)


class GssClientAuth:
    """An established RPCSEC_GSS context, usable as ``auth=`` for ``RpcClient.call``."""

    def __init__(self, ctx: gssapi.SecurityContext, handle: bytes, window: int,
                 service: GssService = GssService.NONE, fast_path: bool = False):
        self.ctx = ctx
        self.handle = handle
        self.window = window
        self.service = service
        #: Set at the first call when ``fast_path`` and the context allows it.
        self.fast: FastContext | None = None
        self._fast_pending = fast_path
        #: Why the fast path is not used ("" while it is, or before the first call).
        self.fast_path_reason = "" if fast_path else "fast path not requested"
        self._seq = itertools.count(1)
        #: Test hooks: the next credential uses this seq_num / service instead.
        self.force_seq: int | None = None
        self.force_service: int | None = None

    # -- establishment ------------------------------------------------------------------------
    @classmethod
    async def establish(
        cls,
        client: RpcClient,
        prog: int,
        vers: int,
        target: str,
        *,
        ccache: str | None = None,
        creds: gssapi.Credentials | None = None,
        service: GssService = GssService.NONE,
        extra_flags: Iterable[gssapi.RequirementFlag] = (),
        timeout: float = 30.0,
        fast_path: bool = False,
    ) -> GssClientAuth:
        """``target``: ``nfs@host`` (host-based service) or ``nfs/host@REALM``."""
        if creds is None:
            store: dict[bytes | str, bytes | str] | None = {"ccache": ccache} if ccache else None
            creds = gssapi.Credentials(usage="initiate", store=store) if store else gssapi.Credentials(usage="initiate")
        if "/" in target:
            name = gssapi.Name(target, gssapi.NameType.kerberos_principal)
        else:
            name = gssapi.Name(target, gssapi.NameType.hostbased_service)
        flags = 0
        for flag in (*DEFAULT_FLAGS, *extra_flags):
            flags |= int(flag)
        ctx = gssapi.SecurityContext(name=name, creds=creds, usage="initiate", flags=flags,
                                     mech=gssapi.MechType.kerberos)
        token = ctx.step()
        handle = b""
        proc = GssProc.INIT
        for _ in range(8):
            res, reply = await init_call(client, prog, vers, proc, handle, token or b"", timeout)
            if res.gss_major not in (GSS_S_COMPLETE, GSS_S_CONTINUE_NEEDED):
                f = translate(res.gss_major, res.gss_minor)
                raise GssClientError(f"server refused the GSS context: {f.describe()}", f)
            handle = res.handle
            if res.token:
                token = ctx.step(res.token)
            if res.gss_major == GSS_S_COMPLETE:
                if not ctx.complete:
                    raise GssClientError("server says complete but the initiator is not")
                if reply.verf_flavor != AuthFlavor.RPCSEC_GSS:
                    raise GssClientError("final INIT reply has no RPCSEC_GSS verifier")
                try:
                    ctx.verify_signature(wire.seq_bytes(res.seq_window), reply.verf_body)
                except GSSError as exc:
                    raise GssClientError(f"INIT reply verifier does not match: {exc}") from None
                return cls(ctx, handle, res.seq_window, service, fast_path)
            proc = GssProc.CONTINUE_INIT
        raise GssClientError("context establishment did not finish in 8 legs")

    # -- ClientAuth ---------------------------------------------------------------------------
    def credential(self) -> tuple[int, bytes, Any]:
        seq = next(self._seq) if self.force_seq is None else self.force_seq
        self.force_seq = None
        service = self.service if self.force_service is None else self.force_service
        self.force_service = None
        body = wire.encode_cred(wire.GssCred(GssProc.DATA, seq, int(service), self.handle))
        return AuthFlavor.RPCSEC_GSS, body, _CallState(seq, GssService(service) if service in (1, 2, 3) else GssService.NONE)

    def destroy_credential(self) -> tuple[int, bytes, Any]:
        seq = next(self._seq)
        body = wire.encode_cred(wire.GssCred(GssProc.DESTROY, seq, int(self.service), self.handle))
        return AuthFlavor.RPCSEC_GSS, body, _CallState(seq, self.service)

    @property
    def protection(self) -> str:
        """``openssl`` once the fast path is in use, else ``mit``."""
        return "openssl" if self.fast is not None else "mit"

    def verifier(self, header: bytes, state: Any) -> tuple[int, bytes]:
        if self._fast_pending:
            # The first token this side sends: made by the library as the fast path's probe.
            self._fast_pending = False
            choice = choose_fast_path(self.ctx, header)
            self.fast = choice.fast
            self.fast_path_reason = choice.reason
            if choice.probe is not None:
                return AuthFlavor.RPCSEC_GSS, choice.probe
        return AuthFlavor.RPCSEC_GSS, self._get_mic(header)

    # -- per-message tokens on whichever engine this context uses --------------------------------
    def _get_mic(self, data: bytes) -> bytes:
        if self.fast is not None:
            return self.fast.get_mic(data)
        return bytes(self.ctx.get_signature(data))

    def _verify_mic(self, data: bytes | memoryview, mic: bytes | memoryview) -> None:
        """Raise GSSError or BadToken unless ``mic`` is a valid MIC of ``data``."""
        if self.fast is not None:
            self.fast.verify_mic(data, mic)
        else:
            self.ctx.verify_signature(bytes(data), bytes(mic))

    def _wrap(self, data: bytes) -> bytes:
        if self.fast is not None:
            return self.fast.wrap(data, True)
        return bytes(self.ctx.wrap(data, True).message)

    def _unwrap(self, token: bytes | memoryview) -> tuple[bytes | memoryview, bool]:
        if self.fast is not None:
            # A view of the decrypted message in a buffer of its own: no copy.
            return self.fast.unwrap_view(token)
        res = self.ctx.unwrap(bytes(token))
        return bytes(res.message), bool(res.encrypted)

    def wrap_args(self, args: bytes, state: Any) -> bytes:
        parts = self.wrap_args_parts((args,), state)
        return parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[return-value]

    def wrap_args_parts(self, args: Sequence[Buffer], state: Any) -> list[Buffer]:
        """The call body for arguments given as several buffers, as buffers to send."""
        st: _CallState = state
        if st.service is GssService.NONE:
            return list(args)
        seq = wire.seq_bytes(st.seq)
        fast = self.fast
        if fast is not None:
            # The arguments are MACed or sealed where they lie (a WRITE's data is never
            # joined to its COMPOUND): RFC 2203 §5.3.2.2 rpc_gss_integ_data, §5.3.2.3
            # rpc_gss_priv_data.
            if st.service is GssService.INTEGRITY:
                n = 4 + sum(len(a) for a in args)
                mic = fast.get_mic_pieces((seq, *args))
                return [n.to_bytes(4, "big"), seq, *args, bytes(-n & 3), *wire.opaque_parts(mic)]
            return [fast.wrap_opaque((seq, *args))]
        data = b"".join((seq, *args))
        if st.service is GssService.INTEGRITY:
            mic = self._get_mic(data)
            return [*wire.opaque_parts(data), *wire.opaque_parts(mic)]
        return wire.opaque_parts(self._wrap(data))

    def unwrap_results(self, reply: msg.Reply, state: Any) -> bytes | memoryview:
        st: _CallState = state
        if reply.verf_flavor != AuthFlavor.RPCSEC_GSS:
            raise GssClientError(f"reply verifier flavor {reply.verf_flavor}, not RPCSEC_GSS")
        try:
            # RFC 2203 §5.3.3.2: the reply verifier is a MIC over the call's seq_num.
            self._verify_mic(wire.seq_bytes(st.seq), reply.verf_body)
        except (GSSError, BadToken) as exc:
            raise GssClientError(f"reply verifier does not match seq_num {st.seq}: {exc}") from None
        assert reply.body is not None
        body = reply.body
        if st.service is GssService.NONE:
            return body
        try:
            if st.service is GssService.INTEGRITY:
                data, checksum = wire.split_integ(body, 1 << 30)
                self._verify_mic(data, checksum)
                plain: bytes | memoryview = data
            else:
                token = wire.split_priv(body, 1 << 30)
                plain, encrypted = self._unwrap(token)
                if not encrypted:
                    raise GssClientError("privacy reply was not encrypted")
            seq, results = wire.take_seq(plain)
        except (GSSError, BadToken, XdrError) as exc:
            raise GssClientError(f"reply body check failed: {exc}") from None
        if seq != st.seq:
            raise GssClientError(f"reply body carries seq_num {seq}, expected {st.seq}")
        return results

    async def destroy(self, client: RpcClient, prog: int, vers: int, timeout: float = 30.0) -> None:
        """RPCSEC_GSS_DESTROY (RFC 2203 §5.4)."""
        xid = client.next_xid()
        flavor, body, state = self.destroy_credential()
        header = msg.encode_call(xid, prog, vers, 0, flavor, body)
        vf, vb = self.verifier(header, state)
        record = header + msg.encode_opaque_auth(vf, vb) + self.wrap_args(b"", state)
        reply = await client.call_raw(xid, record, timeout)
        check_reply(reply)
        self.unwrap_results(reply, state)


async def init_call(client: RpcClient, prog: int, vers: int, proc: GssProc, handle: bytes, token: bytes,
                    timeout: float = 30.0) -> tuple[wire.InitRes, msg.Reply]:
    """One INIT/CONTINUE_INIT leg; returns the decoded rpc_gss_init_res and the reply."""
    xid = client.next_xid()
    cred = wire.encode_cred(wire.GssCred(proc, 0, GssService.NONE, handle))
    record = (msg.encode_call(xid, prog, vers, 0, AuthFlavor.RPCSEC_GSS, cred)
              + msg.encode_opaque_auth(AuthFlavor.AUTH_NONE, b"") + wire.encode_init_arg(token))
    reply = await client.call_raw(xid, record, timeout)
    check_reply(reply)
    assert reply.body is not None
    try:
        return wire.decode_init_res(reply.body), reply
    except XdrError as exc:
        raise RpcError(reply, f"malformed rpc_gss_init_res: {exc}") from None
