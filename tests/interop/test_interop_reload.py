"""Reload while the Linux client has the server mounted: an export's flavors are narrowed with
`securenfs reload` while a process sits inside the pseudo-root mount; its next step into the
export meets NFS4ERR_WRONGSEC and the kernel renegotiates (SECINFO) without an error reaching
the process.  One guest boot; the host narrows the export on the guest's request."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.conftest import RunScenario
from tests.interop.guest import Guest
from tests.interop.results import ScenarioRun
from tests.interop.server import GuestKerberos, InteropServer

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

ALL_FLAVORS = 'sec = ["krb5p", "krb5i", "krb5", "sys"]'


class ReloadingServer(InteropServer):
    """The interop server with a host hook that narrows /all to sys and reloads."""

    def narrow_all(self) -> str:
        (self.export_paths["/all"] / "narrow-file").write_text("narrowed by reload\n")
        (self.export_paths["/all"] / "narrow-file").chmod(0o644)
        text = self.config_path.read_text()
        assert text.count(ALL_FLAVORS) == 1, "only /all allows every flavor"
        self.config_path.write_text(text.replace(ALL_FLAVORS, 'sec = ["sys"]'))
        out = subprocess.run([sys.executable, "-m", "securenfs", "reload", "--config", str(self.config_path)],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            return f"ERROR reload failed (rc={out.returncode}): {out.stderr.strip()}"
        return "/all narrowed to sys by securenfs reload"

    def hooks(self) -> dict[str, Any]:
        return {**super().hooks(), "narrow-all": self.narrow_all}


@pytest.fixture(scope="module")
def interop_server(interop_guest: Guest, interop_kerberos: GuestKerberos,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropServer]:
    srv = ReloadingServer(tmp_path_factory.mktemp("interop-reload"), interop_kerberos)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def reloads(run_scenario: RunScenario) -> ScenarioRun:
    return run_scenario("reload", "reload.sh", timeout=600)


def test_process_inside_survives_narrowing_by_reload(reloads: ScenarioRun) -> None:
    reloads.require("reload-narrow-while-inside")
    assert "narrow-all" in " ".join(reloads.result.requests)
    window = reloads.window("reload-narrow-while-inside")
    assert window is not None
    log = reloads.server.log_between(*window, min_level="INFO")
    # The client met WRONGSEC (krb5p traffic is encrypted, so the server log is the witness),
    # and the reload really changed /all while the server kept running (one start).
    assert any("NFS4ERR_WRONGSEC" in ln and "/all" in ln for ln in log), reloads.server_view(
        "reload-narrow-while-inside")
    assert any("reload: exports added none, removed none, changed ['/all']" in ln for ln in log), log
    assert reloads.server.starts == 1
