"""Fixtures of the interop suite (``pytest -m interop``): the cached guest, the test KDC, the
real server, and one guest boot per scenario group.

Where qemu (or socat) is missing the whole suite is skipped, and the terminal summary says so
in a box, so a green run without the kernel client cannot be mistaken for a tested one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.guest import Guest, GuestResult
from tests.interop.image import ImageError, ensure_image, missing_host_tools
from tests.interop.results import ScenarioRun
from tests.interop.server import (
    CLIENT_FQDN,
    SERVER_FQDN,
    SERVER_SHORT,
    GuestKerberos,
    InteropServer,
    guest_users_script,
)
from tests.support.kdc import kdc_realm  # noqa: F401  (fixture)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
_REPORT: dict[str, Any] = {"skip": None, "accel": None, "runs": []}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORT["skip"]:
        tr = terminalreporter
        bar = "!" * 78
        tr.write_line(bar, red=True, bold=True)
        tr.write_line("INTEROP SUITE SKIPPED: the Linux kernel NFS client was NOT tested", red=True, bold=True)
        tr.write_line(f"reason: {_REPORT['skip']}", red=True)
        tr.write_line(bar, red=True, bold=True)
    elif _REPORT["accel"] is not None:
        terminalreporter.write_line(f"interop guest accelerator: {_REPORT['accel']}")
        for line in _REPORT["runs"]:
            terminalreporter.write_line(f"  {line}")


@pytest.fixture(scope="session")
def interop_guest() -> Guest:
    missing = missing_host_tools(build=False)
    if missing:
        _REPORT["skip"] = ("qemu/socat missing on this host: apt-get install -y --no-install-recommends "
                           + " ".join(missing))
        pytest.skip(_REPORT["skip"])
    try:
        image = ensure_image()
    except ImageError as exc:
        if missing_host_tools(build=True):
            _REPORT["skip"] = str(exc)
            pytest.skip(str(exc))
        pytest.fail(f"interop guest image: {exc}")
    guest = Guest(image)
    _REPORT["accel"] = str(guest.accel)
    return guest


@pytest.fixture(scope="session")
def interop_kerberos(kdc_realm: Any, tmp_path_factory: pytest.TempPathFactory) -> GuestKerberos:  # noqa: F811
    return GuestKerberos.create(kdc_realm, tmp_path_factory.mktemp("interop-krb5"))


@pytest.fixture(scope="module")
def interop_server(interop_guest: Guest, interop_kerberos: GuestKerberos,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropServer]:
    srv = InteropServer(tmp_path_factory.mktemp("interop-server"), interop_kerberos)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


RunScenario = Callable[..., ScenarioRun]


@pytest.fixture(scope="module")
def run_scenario(interop_guest: Guest, interop_server: InteropServer,
                 interop_kerberos: GuestKerberos) -> RunScenario:
    """Boot the guest once with a scenario file (plus the users and Kerberos files); ``hooks``
    adds host hooks the scenario may call with ``host_request``."""

    def run(title: str, script_name: str, *, env: dict[str, str] | None = None,
            timeout: float = 900.0, kerberos: bool = True,
            files: dict[str, bytes | Path] | None = None,
            hooks: dict[str, Any] | None = None) -> ScenarioRun:
        script = guest_users_script() + (SCENARIOS / script_name).read_text()
        guest_env = {"SERVER": SERVER_FQDN, "SERVER_SHORT": SERVER_SHORT, "CLIENT": CLIENT_FQDN,
                     "REALM": interop_kerberos.realm}
        for u, pw in interop_kerberos.passwords.items():
            guest_env[f"PW_{u.upper()}"] = pw
        if kerberos:
            guest_env["KDC_FORWARDED"] = "1"
        guest_env.update(env or {})
        guest_files: dict[str, bytes | Path] = dict(interop_kerberos.guest_files()) if kerberos else {}
        guest_files.update(files or {})
        forwards = interop_server.forwards() if kerberos else interop_server.forwards()[:1]
        verbose = os.environ.get("SECURENFS_INTEROP_VERBOSE") == "1"
        result: GuestResult = interop_guest.run(
            script, env=guest_env, files=guest_files, forwards=forwards, hostname=CLIENT_FQDN,
            server_names=f"{SERVER_FQDN} {SERVER_SHORT}", hooks={**interop_server.hooks(), **(hooks or {})},
            timeout=timeout, on_output=(lambda s: print(s, end="", flush=True)) if verbose else None)
        run = ScenarioRun.of(title, result, interop_server)
        passed = sum(1 for c in run.checks.values() if c.status == "PASS")
        _REPORT["runs"].append(f"{title}: {passed}/{len(run.checks)} checks passed; {result.summary()}")
        log_dir = os.environ.get("SECURENFS_INTEROP_LOGS")
        if log_dir:
            d = Path(log_dir)
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{script_name}.guest.log").write_text(result.output + "\n--- console\n" + result.console_tail)
            (d / f"{script_name}.server.log").write_text(interop_server.log_text())
            if interop_server.relay is not None:
                (d / f"{script_name}.wire.txt").write_text(
                    interop_server.relay.watch.summary() + "\n"
                    + "\n".join(c.describe() for c in interop_server.relay.watch.compounds))
        return run

    return run
