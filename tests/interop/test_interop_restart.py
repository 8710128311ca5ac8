"""Server restarts (SIGKILL, and a clean SIGTERM stop) while the guest's application holds an
open file and a lock: the application continues without an error once the client reclaims.
One guest boot; the server is restarted from the host on the guest's request."""

from __future__ import annotations

import pytest

from tests.interop.conftest import SCENARIOS, RunScenario
from tests.interop.results import ScenarioRun

pytestmark = [pytest.mark.interop, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def restarts(run_scenario: RunScenario) -> ScenarioRun:
    return run_scenario("restart", "restart.sh", timeout=1200,
                        files={"/usr/local/bin/lockholder.py": SCENARIOS / "lockholder.py"})


@pytest.mark.parametrize("check", ["restart-server-kill9-sys", "restart-server-restart-sys",
                                   "restart-server-kill9-krb5p"])
def test_application_survives_server_restart(restarts: ScenarioRun, check: str) -> None:
    restarts.require(check)
    # The restart really happened: the host hook ran and the server started again.
    assert any(r.startswith(("server-kill9", "server-restart")) for r in restarts.result.requests)
    assert restarts.server.starts >= 2
