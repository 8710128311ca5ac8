"""The admin socket: a Unix-domain socket in the state directory answering ``status``.

A request is one line (``status``, a command such as ``reload``, or an action with one
argument such as ``expire 0x...``); the answer is one JSON
document, then the server closes the connection.  Each part of the server registers a *provider*, a function returning a JSON-ready
dict, under a name (``server``, ``exports``, ``gss``, ``grace`` ...).  The socket is created
mode 0600: the status names clients and principals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("securenfs.admin")

Provider = Callable[[], Any]
Command = Callable[[], Awaitable[dict[str, Any]]]
MAX_REQUEST = 4096
_UCRED = struct.Struct("3i")


@dataclass(slots=True, frozen=True)
class AdminRequest:
    """An action's request: its argument (the rest of the line) and who asked."""

    name: str
    arg: str
    #: The uid of the process that connected (SO_PEERCRED), for the log.
    uid: int | None


Action = Callable[[AdminRequest], Awaitable[dict[str, Any]]]


def peer_uid(sock: socket.socket | None) -> int | None:
    """The uid of the process at the other end of a Unix-domain socket (SO_PEERCRED)."""
    if sock is None:
        return None
    try:
        _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError:
        return None
    return int(uid)


class AdminSocket:
    def __init__(self, path: Path):
        self.path = path
        self.providers: dict[str, Provider] = {}
        self.commands: dict[str, Command] = {}
        self.actions: dict[str, Action] = {}
        self._server: asyncio.AbstractServer | None = None

    def add_provider(self, name: str, fn: Provider) -> None:
        self.providers[name] = fn

    def add_command(self, name: str, fn: Command) -> None:
        """A request that changes something (``reload``); ``fn`` answers with a JSON-ready dict."""
        self.commands[name] = fn

    def add_action(self, name: str, fn: Action) -> None:
        """A request with an argument (``expire CLIENT``); ``fn`` answers a JSON-ready dict."""
        self.actions[name] = fn

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": "securenfs-status/1"}
        for name, fn in self.providers.items():
            try:
                out[name] = fn()
            except Exception as exc:  # one broken provider must not hide the others
                log.exception("status provider %r failed", name)
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            cmd = line[:MAX_REQUEST].decode("utf-8", "replace").strip()
            name, _, arg = cmd.partition(" ")
            if cmd in ("", "status"):
                body = self.snapshot()
            elif cmd in self.commands:
                try:
                    body = await self.commands[cmd]()
                except Exception as exc:  # the server keeps running; the caller learns why
                    log.exception("admin command %r failed", cmd)
                    body = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            elif name in self.actions:
                req = AdminRequest(name, arg.strip(), peer_uid(writer.get_extra_info("socket")))
                try:
                    body = await self.actions[name](req)
                except Exception as exc:  # the server keeps running; the caller learns why
                    log.exception("admin request %r failed", name)
                    body = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            else:
                known = ", ".join(repr(c) for c in ["status", *self.commands, *self.actions])
                body = {"error": f"unknown request {cmd[:40]!r}; the requests are {known}"}
            writer.write(json.dumps(body, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        await close_server(self._server)
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def close_server(server: asyncio.AbstractServer | None) -> None:
    """Stop listening and wait (briefly) for the connections being answered."""
    if server is not None:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def query(path: Path, timeout: float = 5.0, request: str = "status") -> dict[str, Any]:
    """Ask a running server for its status, or send it a command (blocking; for the CLI)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(request.encode("utf-8") + b"\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    result: dict[str, Any] = json.loads(b"".join(chunks))
    return result


def render(status: dict[str, Any]) -> str:
    """The human view of a status document (tables and ``key: value`` lines, no reprs)."""
    from securenfs.admin.tables import table, text, tree

    lines: list[str] = []
    srv = status.get("server", {})
    if srv:
        lines.append(f"securenfs {srv.get('version', '')}  pid {srv.get('pid')}  up {srv.get('uptime_seconds', 0):.0f} s")
        lines.append(f"  server_owner {srv.get('server_owner')}  scope {srv.get('server_scope')}  "
                     f"boot epoch {srv.get('boot_epoch')}")
        lines.append(f"  listening on {', '.join(srv.get('listen', []))}")
        lines.append(f"  connections {srv.get('connections', 0)}  calls in flight {srv.get('calls_in_flight', 0)}")
    grace = status.get("grace")
    if isinstance(grace, dict) and grace:
        state = grace.get("state", "?")
        extra = ""
        if grace.get("seconds_left") is not None:
            extra = f", {grace['seconds_left']:.0f} s left"
        lines.append(f"grace: {state}{extra}")
        missing = grace.get("clients_to_reclaim") or grace.get("missing") or []
        if missing:
            lines.append(f"  clients still to reclaim: {len(missing)}")
            lines += [f"    {c}" for c in missing[:20]]
    exports = status.get("exports")
    if isinstance(exports, list):
        lines.append("exports:")
        for e in exports:
            flag = "on " if e.get("enabled") else "OFF"
            lines.append(f"  [{flag}] {e.get('pseudo')} -> {e.get('path')}  sec={','.join(e.get('flavors', []))}")
            for r in e.get("disabled_because", []):
                lines.append(f"        {r}")
    pre = status.get("preflight")
    if isinstance(pre, dict) and pre:
        every = f", every {pre['interval']} s" if pre.get("interval") else ""
        lines.append(f"preflight: {pre.get('state')}{every}; Kerberos {pre.get('kerberos', '?')}")
        for cid, c in (pre.get("checks") or {}).items():
            when = time.strftime("%H:%M:%S", time.localtime(c.get("ran_at", 0)))
            lines.append(f"  {cid:<9} {c.get('status', '?'):<8} {when}  {c.get('summary', '')}")
            if c.get("status") in ("ERROR", "CRITICAL") and c.get("remedy"):
                lines.append(f"            fix: {c['remedy']}")
    rpc = status.get("rpc")
    if isinstance(rpc, dict):
        lines.append("rpc:")
        lines.append(f"  calls by flavor: {text(rpc.get('calls_by_flavor') or {})}")
        lines.append(f"  authentication refused: {text(rpc.get('auth_failures') or {})}")
    for name, value in status.items():
        if name in ("schema", "server", "grace", "exports", "preflight", "rpc"):
            continue
        lines.append(f"{name}:")
        if isinstance(value, dict) and isinstance(value.get("details"), list) and value["details"]:
            # GSS contexts: a table of their own.
            lines += tree({k: v for k, v in value.items() if k != "details"})
            details = value["details"]
            headers = list(dict.fromkeys(k for d in details for k in d))
            lines.append("  contexts:")
            lines += table(headers, [[d.get(h) for h in headers] for d in details], "    ")
        else:
            lines += tree(value)
    return "\n".join(lines) + "\n"
