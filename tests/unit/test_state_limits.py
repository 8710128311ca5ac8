"""The bounds on clients and sessions: the default for the machine, the rate-limited log
line and the peers it names (securenfs.state.limits)."""

from __future__ import annotations

import pytest

from securenfs.config import parse
from securenfs.state.limits import (
    MAX_DEFAULT_CLIENTS,
    MEMORY_PER_CLIENT,
    MIN_DEFAULT_CLIENTS,
    ClientLimits,
    RefusalLog,
    default_max_clients,
    top_peers,
)

GIB = 1 << 30


@pytest.mark.parametrize(("memory", "expected"), [
    (8 * GIB, 8 * GIB // MEMORY_PER_CLIENT),  # 32,768
    (64 << 20, MIN_DEFAULT_CLIENTS),  # a tiny VM still takes a thousand clients
    (1 << 42, MAX_DEFAULT_CLIENTS),  # 4 TiB: capped
    (None, MIN_DEFAULT_CLIENTS * 16),  # the platform does not say
])
def test_default_max_clients_follows_memory(memory: int | None, expected: int) -> None:
    assert default_max_clients(memory) == expected


def test_config_keys_reach_the_limits() -> None:
    cfg = parse({"server": {"max_clients": 5, "max_sessions_per_client": 2}})
    assert ClientLimits.for_machine(cfg.server.max_clients, cfg.server.max_sessions_per_client) == ClientLimits(5, 2)
    auto = parse({}).server
    assert auto.max_clients == 0 and auto.max_sessions_per_client == 16
    assert ClientLimits.for_machine(auto.max_clients).max_clients >= MIN_DEFAULT_CLIENTS


def test_refusal_log_is_rate_limited_and_counts_what_it_skipped() -> None:
    r = RefusalLog(interval=60.0)
    assert r.refused(100.0) == 1  # the first refusal is logged at once
    assert [r.refused(t) for t in (101.0, 120.0, 159.0)] == [None, None, None]
    assert r.refused(160.0) == 4  # the line says how many since the last one
    assert r.refused(161.0) is None
    assert r.total == 6


def test_top_peers_names_the_biggest_holders_first() -> None:
    peers = ["10.0.0.7"] * 5 + ["10.0.0.9"] * 2 + ["10.0.0.1"] + [f"10.1.0.{i}" for i in range(10)]
    assert top_peers(peers, 2) == "10.0.0.7 (5), 10.0.0.9 (2)"
    assert top_peers([]) == "none"
