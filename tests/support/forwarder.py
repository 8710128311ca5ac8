"""A loopback UDP+TCP port forwarder that a test switches on and off.

Used to make a real KDC unreachable for one process only (its krb5.conf names the forwarder's
port) while the KDC itself keeps serving every other test.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class Forwarder:
    """Forwards 127.0.0.1:``port`` (UDP and TCP) to ``target`` while started."""

    def __init__(self, port: int, target: tuple[str, int]):
        self.port = port
        self.target = target
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    def start(self) -> None:
        self._stop.clear()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind(("127.0.0.1", self.port))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", self.port))
        tcp.listen(16)
        self._socks = [udp, tcp]
        self._threads = [threading.Thread(target=self._udp, args=(udp,), daemon=True),
                         threading.Thread(target=self._tcp, args=(tcp,), daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        for s in self._socks:
            s.close()
        self._threads, self._socks = [], []

    def _udp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            if not select.select([sock], [], [], 0.1)[0]:
                continue
            data, peer = sock.recvfrom(65536)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(5)
                up.sendto(data, self.target)
                with contextlib.suppress(OSError):
                    sock.sendto(up.recv(65536), peer)

    def _tcp(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            if not select.select([sock], [], [], 0.1)[0]:
                continue
            conn, _ = sock.accept()
            threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError), socket.create_connection(self.target, timeout=5) as up:
            pair = {conn: up, up: conn}
            while not self._stop.is_set():
                ready = select.select(list(pair), [], [], 0.1)[0]
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
