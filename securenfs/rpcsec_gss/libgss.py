"""Per-message GSS-API calls into the MIT library through ctypes.

Used for acceptor contexts whose initiator asked for replay or out-of-sequence detection:
MIT then answers valid but reordered tokens with supplementary statuses (DUPLICATE_TOKEN,
OLD_TOKEN, UNSEQ_TOKEN, GAP_TOKEN, RFC 2744 §3.9.1) while still returning the message,
and python-gssapi raises instead of returning it.  Here the status is looked at directly:
only routine and calling errors fail.

The python-gssapi context is exported (gss_export_sec_context) and imported into a handle
owned by this object, which deletes it when collected.  ctypes releases the GIL during calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

import gssapi

from securenfs.rpcsec_gss.gsserrors import translate
from securenfs.rpcsec_gss.protection import Data, ProtectionError

_OM = ctypes.c_uint32


class _Buffer(ctypes.Structure):
    _fields_ = [("length", ctypes.c_size_t), ("value", ctypes.c_void_p)]


_lib: Any = None
_lib_lock = threading.Lock()


def _load() -> Any:
    global _lib
    with _lib_lock:
        if _lib is None:
            name = ctypes.util.find_library("gssapi_krb5") or "libgssapi_krb5.so.2"
            lib = ctypes.CDLL(name)
            P = ctypes.POINTER
            lib.gss_import_sec_context.argtypes = [P(_OM), P(_Buffer), P(ctypes.c_void_p)]
            lib.gss_get_mic.argtypes = [P(_OM), ctypes.c_void_p, _OM, P(_Buffer), P(_Buffer)]
            lib.gss_verify_mic.argtypes = [P(_OM), ctypes.c_void_p, P(_Buffer), P(_Buffer), P(_OM)]
            lib.gss_wrap.argtypes = [P(_OM), ctypes.c_void_p, ctypes.c_int, _OM, P(_Buffer),
                                     P(ctypes.c_int), P(_Buffer)]
            lib.gss_unwrap.argtypes = [P(_OM), ctypes.c_void_p, P(_Buffer), P(_Buffer),
                                       P(ctypes.c_int), P(_OM)]
            lib.gss_release_buffer.argtypes = [P(_OM), P(_Buffer)]
            lib.gss_delete_sec_context.argtypes = [P(_OM), P(ctypes.c_void_p), P(_Buffer)]
            lib.gss_display_status.argtypes = [P(_OM), _OM, ctypes.c_int, ctypes.c_void_p,
                                               P(_OM), P(_Buffer)]
            for fn in ("gss_import_sec_context", "gss_get_mic", "gss_verify_mic", "gss_wrap",
                       "gss_unwrap", "gss_release_buffer", "gss_delete_sec_context",
                       "gss_display_status"):
                getattr(lib, fn).restype = _OM
            _lib = lib
        return _lib


def _in(data: bytes) -> _Buffer:
    # The bytes object stays alive in the caller's frame for the duration of the call.
    return _Buffer(len(data), ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p))


def _take(lib: Any, buf: _Buffer) -> bytes:
    try:
        return ctypes.string_at(buf.value, buf.length) if buf.length else b""
    finally:
        minor = _OM()
        lib.gss_release_buffer(ctypes.byref(minor), ctypes.byref(buf))


def _minor_text(lib: Any, minor: int) -> str:
    parts: list[str] = []
    msg_ctx = _OM(0)
    for _ in range(8):
        m = _OM()
        out = _Buffer()
        if lib.gss_display_status(ctypes.byref(m), minor, 2, None, ctypes.byref(msg_ctx),
                                  ctypes.byref(out)) & 0xFFFF0000:
            break
        parts.append(_take(lib, out).decode("utf-8", "replace"))
        if msg_ctx.value == 0:
            break
    return "; ".join(p for p in parts if p)


def _failed(major: int) -> bool:
    # Calling or routine error; supplementary bits (low 16) alone are success here.
    return bool(major & 0xFFFF0000)


class LibGssProtection:
    kind = "libgss"
    __slots__ = ("_lib", "_ctx", "_lock", "__weakref__")

    def __init__(self, exported: bytes):
        lib = _load()
        self._lib = lib
        # MIT's per-message calls update the context (send sequence number, the replay
        # and sequence state this kind of context carries) without a lock of their own,
        # and ctypes drops the GIL: one call at a time per context.
        self._lock = threading.Lock()
        self._ctx = ctypes.c_void_p()
        minor = _OM()
        tok = _in(exported)
        major = lib.gss_import_sec_context(ctypes.byref(minor), ctypes.byref(tok), ctypes.byref(self._ctx))
        if _failed(major):
            raise ProtectionError("import_sec_context", translate(major, minor.value, _minor_text(lib, minor.value)))

    @classmethod
    def from_gssapi(cls, ctx: gssapi.SecurityContext) -> LibGssProtection:
        """Take over an established python-gssapi context (it is unusable afterwards)."""
        return cls(ctx.export())

    def busy(self) -> bool:
        return self._lock.locked()

    def _error(self, what: str, major: int, minor: int) -> ProtectionError:
        return ProtectionError(what, translate(major, minor, _minor_text(self._lib, minor), per_message=True))

    def get_mic(self, data: Data) -> bytes:
        d = bytes(data)
        minor, out = _OM(), _Buffer()
        inp = _in(d)
        with self._lock:
            major = self._lib.gss_get_mic(ctypes.byref(minor), self._ctx, 0, ctypes.byref(inp), ctypes.byref(out))
        if _failed(major):
            raise self._error("get_mic", major, minor.value)
        return _take(self._lib, out)

    def verify_mic(self, data: Data, mic: Data) -> None:
        d, m = bytes(data), bytes(mic)
        minor, qop = _OM(), _OM()
        bd, bm = _in(d), _in(m)
        with self._lock:
            major = self._lib.gss_verify_mic(ctypes.byref(minor), self._ctx, ctypes.byref(bd), ctypes.byref(bm),
                                             ctypes.byref(qop))
        if _failed(major):
            raise self._error("verify_mic", major, minor.value)

    def wrap(self, data: Data) -> bytes:
        d = bytes(data)
        minor, conf, out = _OM(), ctypes.c_int(0), _Buffer()
        inp = _in(d)
        with self._lock:
            major = self._lib.gss_wrap(ctypes.byref(minor), self._ctx, 1, 0, ctypes.byref(inp), ctypes.byref(conf),
                                       ctypes.byref(out))
        if _failed(major):
            raise self._error("wrap", major, minor.value)
        result = _take(self._lib, out)
        if not conf.value:
            raise ProtectionError("wrap", translate(0xD0000, 0, "confidentiality not available"))
        return result

    def unwrap(self, token: Data) -> bytes:
        t = bytes(token)
        minor, conf, qop, out = _OM(), ctypes.c_int(0), _OM(), _Buffer()
        inp = _in(t)
        with self._lock:
            major = self._lib.gss_unwrap(ctypes.byref(minor), self._ctx, ctypes.byref(inp), ctypes.byref(out),
                                         ctypes.byref(conf), ctypes.byref(qop))
        if _failed(major):
            raise self._error("unwrap", major, minor.value)
        result = _take(self._lib, out)
        if not conf.value:
            raise ProtectionError("unwrap", translate(0xD0000, 0, "token was not encrypted"))
        return result

    def __del__(self) -> None:
        ctx = getattr(self, "_ctx", None)
        if ctx is not None and ctx.value:
            minor = _OM()
            self._lib.gss_delete_sec_context(ctypes.byref(minor), ctypes.byref(ctx), None)
