"""A small SNTP responder (RFC 4330) on 127.0.0.1 that reports a chosen clock offset.

``python -m tests.support.ntpserver HOST:PORT [--offset SECONDS]`` runs it in the foreground
(docs/lab.md uses it as the lab's time server) until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

NTP_EPOCH_DELTA = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def _to_ntp(t: float) -> int:
    t += NTP_EPOCH_DELTA
    return (int(t) << 32) | int((t % 1) * (1 << 32))


class FakeNtpServer:
    """Answers mode-3 client requests with server time = real time + ``offset`` seconds."""

    def __init__(self, offset: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.offset = offset
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.host, self.port = self.sock.getsockname()
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-ntp", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 48:
                continue
            recv = time.time() + self.offset
            origin = data[40:48]  # client's transmit timestamp becomes our originate timestamp
            li_vn_mode = (0 << 6) | (((data[0] >> 3) & 0x7) << 3) | 4  # mode 4: server
            ref = _to_ntp(recv - 1)
            head = struct.pack(">BBbbII4s", li_vn_mode, 2, 6, -20, 0, 0, b"TEST")
            tx = time.time() + self.offset
            pkt = (
                head
                + struct.pack(">Q", ref)
                + origin
                + struct.pack(">QQ", _to_ntp(recv), _to_ntp(tx))
            )
            self.queries += 1
            try:
                self.sock.sendto(pkt, peer)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def ntp_server() -> Iterator[FakeNtpServer]:
    srv = FakeNtpServer()
    try:
        yield srv
    finally:
        srv.close()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    ap = argparse.ArgumentParser(prog="python -m tests.support.ntpserver", description=__doc__)
    ap.add_argument("listen", metavar="HOST:PORT")
    ap.add_argument("--offset", type=float, default=0.0, help="seconds added to this host's clock")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    srv = FakeNtpServer(args.offset, host or "127.0.0.1", int(port))
    print(f"SNTP responder on {srv.address}, offset {srv.offset:+g} s", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    srv.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
