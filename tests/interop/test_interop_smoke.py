"""Smoke: the guest boots (accelerator chosen and reported), its kernel has the NFSv4.1 client,
the restricted forwards reach this host's server and KDC and nothing else, and the kernel's
mount sequence reaches the server (EXCHANGE_ID seen on the wire)."""

from __future__ import annotations

import pytest

from tests.interop.conftest import RunScenario
from tests.interop.guest import Accel
from tests.interop.results import ScenarioRun

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def smoke(run_scenario: RunScenario) -> ScenarioRun:
    return run_scenario("smoke", "smoke.sh", timeout=400)


def test_guest_boots_with_a_reported_accelerator(smoke: ScenarioRun) -> None:
    assert smoke.result.booted, smoke.result.console_tail
    assert smoke.result.accel.accel in (Accel.KVM, Accel.TCG)
    assert smoke.result.accel.reason
    assert smoke.result.rc == 0, smoke.result.output[-2000:]


def test_guest_kernel_has_nfsv4_client(smoke: ScenarioRun) -> None:
    smoke.require("kernel-nfs4")


def test_forwards_reach_server_and_kdc(smoke: ScenarioRun) -> None:
    smoke.require("forward-server", "forward-kdc")
    assert smoke.server.relay is not None and smoke.server.relay.watch.connections >= 1


def test_guest_reaches_nothing_but_the_forwards(smoke: ScenarioRun) -> None:
    smoke.require("restricted-network")


def test_kernel_mount_sequence_reaches_the_server(smoke: ScenarioRun) -> None:
    smoke.require("mount-attempt")
    relay = smoke.server.relay
    assert relay is not None
    seen = {op for c in relay.watch.compounds for op in c.ops}
    assert "EXCHANGE_ID" in seen, (
        "the kernel's mount never reached EXCHANGE_ID on the server; wire: " + relay.watch.summary()
        + "\n" + smoke.explain("mount-attempt"))
