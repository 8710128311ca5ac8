"""The OCF resource agent (contrib/ocf/securenfs) run as Pacemaker would, with a stand-in
server program: start waits for readiness, monitor follows the process, a refused start is
reported, stop is prompt."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "contrib" / "ocf" / "securenfs"
OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 0, 1, 6, 7

FAKE = """#!/bin/sh
# stand-in for `securenfs serve`: refuses to start when asked, else writes the ready file
ready=""
while [ $# -gt 0 ]; do
  case "$1" in --ready-file) ready="$2"; shift ;; esac
  shift
done
if [ -e "$(dirname "$0")/refuse" ]; then
  echo "recovery store /x/recovery.db is corrupt (file is not a database)" >&2
  exit 2
fi
trap 'exit 0' TERM
sleep 0.3
echo "127.0.0.1 2049" > "$ready"
while :; do sleep 0.1; done
"""


@pytest.fixture
def env(tmp_path):
    binary = tmp_path / "fake-securenfs"
    binary.write_text(FAKE)
    binary.chmod(0o755)
    config = tmp_path / "securenfs.toml"
    config.write_text("")
    e = {**os.environ, "OCF_ROOT": str(tmp_path / "no-ocf"), "OCF_RESKEY_binary": str(binary),
         "OCF_RESKEY_config": str(config), "OCF_RESKEY_run_dir": str(tmp_path / "run")}
    yield e
    subprocess.run([str(AGENT), "stop"], env=e, timeout=30, check=False)


def agent(env, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AGENT), action], env=env, capture_output=True, text=True, timeout=30, check=False)


def test_start_monitor_stop(env):
    assert agent(env, "monitor").returncode == OCF_NOT_RUNNING
    r = agent(env, "start")
    assert r.returncode == OCF_SUCCESS, r.stderr
    assert "listening on 127.0.0.1 2049" in r.stderr
    assert agent(env, "monitor").returncode == OCF_SUCCESS
    assert agent(env, "start").returncode == OCF_SUCCESS  # idempotent
    assert agent(env, "stop").returncode == OCF_SUCCESS
    assert agent(env, "monitor").returncode == OCF_NOT_RUNNING
    assert agent(env, "stop").returncode == OCF_SUCCESS  # idempotent


def test_refused_start_is_reported_with_the_reason(env):
    (Path(env["OCF_RESKEY_binary"]).parent / "refuse").touch()
    r = agent(env, "start")
    assert r.returncode == OCF_ERR_GENERIC
    assert "refused to start" in r.stderr and "corrupt" in r.stderr
    assert agent(env, "monitor").returncode == OCF_NOT_RUNNING


def test_missing_state_directory_fails_validation(env, tmp_path):
    env = {**env, "OCF_RESKEY_state_dir": str(tmp_path / "not-mounted")}
    r = agent(env, "validate-all")
    assert r.returncode == OCF_ERR_CONFIGURED and "not-mounted" in r.stderr


def test_meta_data_is_xml():
    import xml.etree.ElementTree as ET

    out = subprocess.run([str(AGENT), "meta-data"], capture_output=True, text=True, timeout=10, check=True).stdout
    root = ET.fromstring(out)
    assert {a.get("name") for a in root.iter("action")} >= {"start", "stop", "monitor", "meta-data"}
