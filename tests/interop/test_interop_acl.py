"""NFSv4 ACLs through the Linux kernel client (nfs4-acl-tools) on a krb5p mount, one guest
boot: alice reads and sets ACLs naming bob, bob is granted and refused as they say, an ACL the
server cannot store is refused, inheritable ACEs reach new files."""

from __future__ import annotations

import pytest

from tests.interop.conftest import RunScenario
from tests.interop.results import ScenarioRun

pytestmark = [pytest.mark.interop, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def acls(run_scenario: RunScenario) -> ScenarioRun:
    return run_scenario("acl", "acl.sh", timeout=900)


def test_nfs4_acl_tools_in_the_guest(acls: ScenarioRun) -> None:
    acls.require("acl-tools")


def test_alice_reads_her_files_acl(acls: ScenarioRun) -> None:
    acls.require("acl-mount", "acl-read")


def test_bob_is_granted_what_alices_acl_grants(acls: ScenarioRun) -> None:
    acls.require("acl-grant")


def test_bob_is_refused_as_alices_acl_denies(acls: ScenarioRun) -> None:
    acls.require("acl-deny")


def test_unrepresentable_acl_is_refused_unchanged(acls: ScenarioRun) -> None:
    acls.require("acl-refused")


def test_inheritable_aces_reach_new_files(acls: ScenarioRun) -> None:
    acls.require("acl-inherit")
