"""nfsace4 on the wire, decoded by Wireshark (an independent XDR decoder, not ours).

The server's traffic on loopback is captured with tshark while a client sets an ACL and reads
it back; Wireshark's NFS dissector must find the same ACE types, flags, masks and who-strings
in the SETATTR call (our client's encoding) and in the GETATTR reply (the server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from securenfs.acl.ace import AceFlag, AceMask, AceType
from securenfs.client.nfs4 import Nfs4Client
from securenfs.client.rpc import AuthSys
from securenfs.config import ClientRule
from securenfs.nfs4.xdr4 import Nfsace4
from securenfs.proto.constants import Attr
from tests.support.acls import allow, deny, require_posix_acls
from tests.support.nfsserver import NfsServer

OWNER, TEAM, OTHER_USER = 1000, 2001, 1002


@pytest.fixture
def wire_server(tmp_path: Path) -> Iterator[NfsServer]:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    require_posix_acls(tmp_path)
    srv = NfsServer(tmp_path, [("/data", ["sys"], [ClientRule(squash="root")])])
    d = srv.paths["/data"] / "dir"
    d.mkdir()
    os.chown(d, OWNER, OWNER)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class Capture:
    """tshark dissecting one TCP port on loopback live as RPC, printing the ACE fields of
    every NFS packet (stopped with SIGINT)."""

    FIELDS = ("tcp.dstport", "nfs.opcode", "nfs.acetype4", "nfs.aceflags4", "nfs.acemask4", "nfs.who")

    def __init__(self, port: int):
        cmd = ["tshark", "-i", "lo", "-f", f"tcp port {port}", "-l", "-d", f"tcp.port=={port},rpc",
               "-T", "fields", "-E", "separator=|"]
        for f in self.FIELDS:
            cmd += ["-e", f]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # tshark reports "Capture started" before its filter is attached: probe until a
        # packet shows.
        for _ in range(100):  # bounded
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            try:
                self.lines.get(timeout=0.2)
                break
            except queue.Empty:
                if self.proc.poll() is not None:
                    pytest.skip(f"tshark cannot capture on lo here (exit {self.proc.returncode})")
        else:
            pytest.skip("tshark captured nothing on lo")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, done: Callable[[list[list[str]]], bool]) -> list[list[str]]:
        """The fields of the packets printed after the capture was ready, once ``done``
        holds for them (tshark prints a little behind the traffic) or 300 lines came."""
        out: list[list[str]] = []
        for _ in range(300):  # bounded
            if done(out):
                break
            try:
                out.append(self.lines.get(timeout=30).split("|"))
            except queue.Empty:
                break
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)


def _as_fields(aces: list[Nfsace4]) -> list[str]:
    return [",".join(str(a.type) for a in aces), ",".join(f"0x{a.flag:08x}" for a in aces),
            ",".join(f"0x{a.access_mask:08x}" for a in aces), ",".join(a.who.decode() for a in aces)]


def test_wireshark_decodes_our_aces(wire_server: NfsServer) -> None:
    inherit = AceFlag.FILE_INHERIT | AceFlag.DIRECTORY_INHERIT | AceFlag.INHERIT_ONLY
    sent = [allow("OWNER@", AceMask.READ_DATA | AceMask.WRITE_DATA | AceMask.APPEND_DATA | AceMask.EXECUTE
                  | AceMask.DELETE_CHILD | AceMask.WRITE_ACL | AceMask.WRITE_ATTRIBUTES),
            deny(str(OTHER_USER), AceMask.WRITE_DATA | AceMask.APPEND_DATA | AceMask.DELETE_CHILD),
            allow(str(TEAM), AceMask.READ_DATA | AceMask.EXECUTE, AceFlag.IDENTIFIER_GROUP),
            allow("EVERYONE@", AceMask.READ_DATA, inherit)]
    cap = Capture(wire_server.port)

    async def main() -> list[Nfsace4]:
        c = await Nfs4Client.connect("127.0.0.1", wire_server.port, AuthSys(uid=OWNER, gid=OWNER))
        try:
            await c.establish()
            fh = await c.lookup_path("/data/dir")
            await c.setattr(fh, {Attr.ACL: sent})
            got: list[Nfsace4] = (await c.getattr(fh, [Attr.ACL]))[Attr.ACL]
            return got
        finally:
            await c.close()

    port = str(wire_server.port)

    def calls(packets: list[list[str]]) -> list[list[str]]:
        return [p[2:] for p in packets if p[0] == port and "34" in p[1].split(",")]

    def replies(packets: list[list[str]]) -> list[list[str]]:
        return [p[2:] for p in packets if p[0] != port and "9" in p[1].split(",") and p[2]]

    try:
        got = asyncio.run(main())
        packets = cap.until(lambda seen: bool(calls(seen) and replies(seen)))
    finally:
        cap.stop()
    # the SETATTR call: what our client encoded (RFC 8881 §6.2.1 nfsace4)
    assert _as_fields(sent) in calls(packets), packets
    # the GETATTR reply: what the server encoded, ACE for ACE as our client decoded it
    assert _as_fields(got) in replies(packets), packets
    assert got[0].who == b"OWNER@" and any(a.type == AceType.DENY for a in got)
