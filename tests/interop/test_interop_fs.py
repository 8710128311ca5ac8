"""File-system behaviour through the Linux kernel client, per flavor, in one guest boot:
Connectathon-style basic tests, POSIX/flock locks with a conflict, two users whose permissions
and names the client sees, and fio with crc32c verification under krb5p."""

from __future__ import annotations

import pytest

from tests.interop.conftest import SCENARIOS, RunScenario
from tests.interop.results import ScenarioRun

pytestmark = [pytest.mark.interop, pytest.mark.timeout(1800)]

FLAVORS = ["sys", "krb5", "krb5i", "krb5p"]
BASIC = ["create-remove", "tree", "readdir-large", "rename", "links", "chmod", "large-file", "truncate"]


@pytest.fixture(scope="module")
def fs(run_scenario: RunScenario) -> ScenarioRun:
    return run_scenario("filesystem", "fs.sh", timeout=1500,
                        files={"/usr/local/bin/lockholder.py": SCENARIOS / "lockholder.py"})


@pytest.mark.parametrize("sec", FLAVORS)
def test_mount_and_user_directory(fs: ScenarioRun, sec: str) -> None:
    fs.require(f"fs-mount-{sec}", f"fs-mkdir-{sec}")


@pytest.mark.parametrize("sec", FLAVORS)
@pytest.mark.parametrize("case", BASIC)
def test_basic(fs: ScenarioRun, case: str, sec: str) -> None:
    fs.require(f"fs-{case}-{sec}")


@pytest.mark.parametrize("sec", FLAVORS)
def test_posix_and_flock_locks_conflict_between_processes(fs: ScenarioRun, sec: str) -> None:
    fs.require(f"locks-{sec}")


@pytest.mark.parametrize("sec", FLAVORS)
def test_two_users_permissions_and_names(fs: ScenarioRun, sec: str) -> None:
    fs.require(f"two-users-{sec}")


def test_fio_verify_crc32c_under_krb5p(fs: ScenarioRun) -> None:
    fs.require("fio-krb5p")
