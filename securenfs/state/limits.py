"""How many clients and sessions the server keeps, and the words it logs when it is full.

Every client a peer can create costs memory until its lease runs out, so the table of
client owners (co_ownerid) and each client's sessions are bounded.  Past a bound,
EXCHANGE_ID and CREATE_SESSION answer NFS4ERR_DELAY (RFC 8881 §15.1.1.3: "the server
... is not able to handle the request at this time"); the client retries, and by then the
laundromat may have made room.  Pure logic, no clock of its own and no I/O.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

#: Physical memory a client is budgeted in the default cap (a session of 64 slots with full
#: reply caches is far larger; a typical client with one session is a few KiB).
MEMORY_PER_CLIENT = 256 * 1024
MIN_DEFAULT_CLIENTS = 1024
MAX_DEFAULT_CLIENTS = 1_000_000
DEFAULT_SESSIONS_PER_CLIENT = 16


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_max_clients(memory: int | None) -> int:
    """One client per ``MEMORY_PER_CLIENT`` of physical memory, within
    [``MIN_DEFAULT_CLIENTS``, ``MAX_DEFAULT_CLIENTS``] (8 GiB: 32,768 clients)."""
    if memory is None or memory <= 0:
        return MIN_DEFAULT_CLIENTS * 16
    return max(MIN_DEFAULT_CLIENTS, min(MAX_DEFAULT_CLIENTS, memory // MEMORY_PER_CLIENT))


@dataclass(slots=True, frozen=True)
class ClientLimits:
    """``server.max_clients`` (client owners, each with at most one confirmed and one
    unconfirmed record) and ``server.max_sessions_per_client``."""

    max_clients: int
    max_sessions_per_client: int = DEFAULT_SESSIONS_PER_CLIENT

    @classmethod
    def for_machine(cls, max_clients: int = 0,
                    max_sessions_per_client: int = DEFAULT_SESSIONS_PER_CLIENT) -> ClientLimits:
        """``max_clients`` 0 means sized for this machine (``default_max_clients``)."""
        return cls(max_clients or default_max_clients(physical_memory()), max_sessions_per_client)


def top_peers(peers: Iterable[str], n: int = 5) -> str:
    """"10.0.0.7 (812), 10.0.0.9 (40)": the peers holding the most, for the log line."""
    counts = Counter(peers).most_common(n)
    return ", ".join(f"{p} ({k})" for p, k in counts) or "none"


class RefusalLog:
    """Counts refusals and says when a log line is due: the first one, then at most one per
    ``interval`` seconds (a full table under a flood must not flood the log too)."""

    __slots__ = ("interval", "total", "_last", "_since")

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        #: Refusals since the start (the admin view).
        self.total = 0
        self._last: float | None = None
        self._since = 0

    def refused(self, now: float) -> int | None:
        """Record one refusal; returns how many there were since the last line when a line
        is due, else None."""
        self._since += 1
        self.total += 1
        if self._last is not None and now - self._last < self.interval:
            return None
        self._last = now
        n, self._since = self._since, 0
        return n
