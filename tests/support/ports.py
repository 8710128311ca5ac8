"""Free loopback ports for test servers."""

from __future__ import annotations

import random
import socket


def _free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(size: int = 10, lo: int = 20000, hi: int = 60000) -> int:
    """First port of ``size`` consecutive ports free over TCP and UDP on 127.0.0.1."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(lo, hi - size) // 10 * 10
        if all(_free(p, socket.SOCK_STREAM) and _free(p, socket.SOCK_DGRAM) for p in range(base, base + size)):
            return base
    raise RuntimeError("no free block of loopback ports found")
