"""Byte-range locks between the Linux kernel client and processes on the server's host: a
guest process's fcntl lock refuses a host process's fcntl lock on the exported file, and the
reverse (the server mirrors NFS locks into its kernel; see docs/locking.md).  One guest boot;
the host process acts on the guest's requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.conftest import SCENARIOS, RunScenario
from tests.interop.results import ScenarioRun
from tests.interop.server import InteropServer
from tests.support.hostlock import HostLocker

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

FILE = "hostlock-file"


class HostSide:
    """The host process's side of the scenario: hooks the guest calls by name."""

    def __init__(self, server: InteropServer):
        self.path = server.export_paths["/all"] / FILE
        self.locker: HostLocker | None = None

    def _locker(self) -> HostLocker:
        if self.locker is None:
            self.locker = HostLocker(self.path)
        return self.locker

    def try_lock(self) -> str:
        loc = self._locker()
        if not loc.lock("posix", "w", 0, 1):
            return "DENIED"
        loc.unlock("posix", 0, 1)
        return "GOT"

    def hold(self) -> str:
        return "HELD" if self._locker().lock("posix", "w", 0, 0) else "ERROR the range is locked already"

    def release(self) -> str:
        self._locker().unlock("posix", 0, 0)
        return "RELEASED"

    def hooks(self) -> dict[str, object]:
        return {"hostlock-try": self.try_lock, "hostlock-hold": self.hold, "hostlock-release": self.release}

    def close(self) -> None:
        if self.locker is not None:
            self.locker.close()


@pytest.fixture(scope="module")
def hostlocks(run_scenario: RunScenario, interop_server: InteropServer) -> Iterator[ScenarioRun]:
    side = HostSide(interop_server)
    try:
        yield run_scenario("hostlocks", "hostlocks.sh", timeout=600, kerberos=False, env={"FILE": FILE},
                           hooks=side.hooks(),
                           files={"/usr/local/bin/lockholder.py": SCENARIOS / "lockholder.py"})
    finally:
        side.close()


def test_guest_fcntl_lock_refuses_a_host_process(hostlocks: ScenarioRun) -> None:
    hostlocks.require("guest-lock-blocks-host")
    assert any(r.startswith("hostlock-try: DENIED") for r in hostlocks.result.requests)


def test_host_process_lock_refuses_the_guest(hostlocks: ScenarioRun) -> None:
    hostlocks.require("host-lock-blocks-guest")
    assert any(r.startswith("hostlock-hold: HELD") for r in hostlocks.result.requests)
