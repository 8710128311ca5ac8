"""Mounting with the Linux kernel client: each flavor, flavor negotiation without sec=, the
krb5p-only export refused to sec=sys with a logged WRONGSEC, and the client-side Kerberos
mistakes of docs/interop.md (each must fail, not hang or silently succeed).  One guest boot."""

from __future__ import annotations

import pytest

from tests.interop.conftest import RunScenario
from tests.interop.results import ScenarioRun

pytestmark = [pytest.mark.interop, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def mounts(run_scenario: RunScenario) -> ScenarioRun:
    return run_scenario("mounts", "mounts.sh", timeout=900)


def test_mount_without_sec_and_without_gssd_negotiates_sys(mounts: ScenarioRun) -> None:
    mounts.require("mount-nosec-sys")


@pytest.mark.parametrize("sec", ["sys", "krb5", "krb5i", "krb5p"])
def test_mount_with_each_flavor(mounts: ScenarioRun, sec: str) -> None:
    mounts.require(f"mount-{sec}")


def test_mount_without_sec_negotiates_strongest_flavor(mounts: ScenarioRun) -> None:
    mounts.require("mount-nosec-krb5p", "mount-nosec-secure")


def test_sys_on_krb5p_only_export_is_refused_and_logged(mounts: ScenarioRun) -> None:
    mounts.require("wrongsec-sys-on-krb5p")
    window = mounts.window("wrongsec-sys-on-krb5p")
    assert window is not None
    lines = [ln for ln in mounts.server.log_between(*window, min_level="INFO") if "WRONGSEC" in ln]
    assert lines, "the server did not log the WRONGSEC refusal:\n" + mounts.server_view("wrongsec-sys-on-krb5p")
    # The reason must name the export's flavors so an operator can tell what the client lacked.
    assert any("krb5p" in ln for ln in lines), lines


@pytest.mark.parametrize("case", ["gssd-not-running", "no-client-keytab", "enctype-mismatch",
                                  "kdc-unreachable", "mount-by-ip"])
def test_client_kerberos_mistake_fails_the_mount(mounts: ScenarioRun, case: str) -> None:
    mounts.require(f"obstacle-{case}")


def test_good_mount_works_after_the_mistakes_are_fixed(mounts: ScenarioRun) -> None:
    mounts.require("mount-after-obstacles")


def test_server_accepts_the_clients_context_destruction(mounts: ScenarioRun) -> None:
    """Each umount makes the Linux client destroy its RPCSEC_GSS contexts with a NULL call whose
    (empty) arguments it does not wrap for krb5i/krb5p (net/sunrpc/auth_gss sends DESTROY
    unwrapped; knfsd accepts it).  A server that answers GARBAGE_ARGS keeps every context until
    it expires and logs a warning per umount."""
    bad = [ln for ln in mounts.server.log_text().splitlines()
           if "garbage arguments" in ln and "proc=0" in ln]
    assert not bad, ("the server refused the client's RPCSEC_GSS_DESTROY calls (needs: accept "
                     "DESTROY with unwrapped arguments):\n" + "\n".join(bad[:5]))
