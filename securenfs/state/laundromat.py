"""The laundromat (RFC 8881 §8.3): the periodic check of client leases.

Expired clients without state go; expired clients with state stay as courtesy clients until
their state conflicts with another client's request (``StateManager.courtesy_break``), they
grow older than ``courtesy_max_age``, or there are more than ``courtesy_max_clients``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from securenfs.state.clients import ClientTable
from securenfs.state.opens import StateManager

log = logging.getLogger("securenfs.state")


class Laundromat:
    def __init__(self, clients: ClientTable, state: StateManager, lease_time: float, *,
                 courtesy_max_age: float = 86400.0, courtesy_max_clients: int = 1000):
        self.clients = clients
        self.state = state
        self.lease_time = lease_time
        self.courtesy_max_age = courtesy_max_age
        self.courtesy_max_clients = courtesy_max_clients
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start the periodic check on the running loop (once)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval(), self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def interval(self) -> float:
        return max(0.5, min(self.lease_time / 4, 15.0))

    def _tick(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception("laundromat")
        self._timer = asyncio.get_running_loop().call_later(self.interval(), self._tick)

    def run(self) -> None:
        """One pass: expire idle clients, then end the courtesy of the oldest or the excess."""
        self.clients.expire_idle()
        courtesy = self.state.courtesy_clients()
        now = time.monotonic()
        courtesy.sort(key=lambda cs: cs.courtesy_since or now)
        excess = len(courtesy) - self.courtesy_max_clients
        for i, cs in enumerate(courtesy):
            if i < excess or now - (cs.courtesy_since or now) > self.courtesy_max_age:
                c = self.clients.get(cs.clientid)
                if c is not None:
                    self.clients.expire(c, "courtesy period over (lease expired long ago)")
                else:
                    self.state.drop_client(cs.clientid)
