"""What an administrator reads when LDAP is away: LDAP-001 names what it tried, and the
server's log line for a principal the directory cannot map now names the principal once."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from idmap import IdmapConfig, build_mapper
from preflight.registry import load_all
from preflight.runner import run_checks
from preflight.settings import PreflightSettings
from securenfs.nfs4.compound import _log_status
from securenfs.nfs4.owners import IdmapOwners
from securenfs.proto.constants import Op, Stat
from securenfs.proto.errors import Nfs4Error
from securenfs.rpc.peerlog import PeerLog
from tests.support.ports import free_port
from tests.support.slapd import DOMAIN, GROUPS, PEOPLE, REALM, SUFFIX, Directory


def test_ldap001_names_each_uri_host_and_port(small_directory: Directory) -> None:
    dead = free_port()
    s = PreflightSettings(hostname="nfs1.example.test", ldap_uris=[f"ldap://127.0.0.1:{dead}", "ldap://127.0.0.1"],
                          peer_timeout=2.0)
    (r,) = run_checks(s, load_all().select(["LDAP-001"])).results
    assert r.status == "CRITICAL"
    # The summary names the first server tried, with the port a bare URI means (389).
    assert r.summary.startswith(f"no LDAP server answered: ldap://127.0.0.1:{dead} (TCP 127.0.0.1:{dead}): ")
    assert r.summary.endswith("(and 1 more, see detail)")
    assert "ldap://127.0.0.1 (TCP 127.0.0.1:389): " in r.detail
    assert f"TCP 127.0.0.1:{dead}, 127.0.0.1:389 is open" in r.remedy
    assert r.kw["tried"] == [f"ldap://127.0.0.1:{dead} (TCP 127.0.0.1:{dead})", "ldap://127.0.0.1 (TCP 127.0.0.1:389)"]
    # One of two answering: a warning naming the dead one.
    s.ldap_uris = [small_directory.uri, f"ldap://127.0.0.1:{dead}"]
    (r,) = run_checks(s, load_all().select(["LDAP-001"])).results
    assert r.status == "WARNING" and r.summary.startswith(
        f"1 of 2 LDAP servers did not answer: ldap://127.0.0.1:{dead} (TCP 127.0.0.1:{dead}): ")
    s.ldap_uris = [small_directory.uri]
    (r,) = run_checks(s, load_all().select(["LDAP-001"])).results
    port = small_directory.uri.rsplit(":", 1)[1]
    assert r.status == "OK" and r.summary == f"1 LDAP server(s) reachable: {small_directory.uri} (TCP 127.0.0.1:{port})"


def test_delay_log_line_names_the_principal_once(small_directory: Directory,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    config = IdmapConfig.from_mapping({
        "domain": DOMAIN, "local_realms": [REALM], "backends": ["ldap"], "outage_delay": 600,
        "ldap": {"uris": [small_directory.uri], "base": SUFFIX, "user_base": PEOPLE, "group_base": GROUPS,
                 "schema": "rfc2307bis", "timeout": 1.0, "reconnect_min": 0.2, "reconnect_max": 0.4},
    })
    owners = IdmapOwners(build_mapper(config), config)
    principal = f"bob@{REALM}"
    try:
        small_directory.stop()
        with pytest.raises(Nfs4Error) as ei:
            asyncio.run(owners.principal_identity(principal))
        with pytest.raises(Nfs4Error) as owner_ei:
            asyncio.run(owners.owner_to_uid(f"bob@{DOMAIN}"))
    finally:
        owners.close()
        small_directory.start()
    assert ei.value.status == Stat.DELAY and owner_ei.value.status == Stat.DELAY
    ctx = SimpleNamespace(peer="127.0.0.1:900", cred=SimpleNamespace(describe=lambda: "krb5p"),
                          svc=SimpleNamespace(peerlog=PeerLog()))
    with caplog.at_level(logging.INFO, logger="securenfs.nfs4"):
        _log_status(ctx, Op.OPEN, ei.value)  # type: ignore[arg-type]
        _log_status(ctx, Op.SETATTR, owner_ei.value)  # type: ignore[arg-type]
    opened, setattr_ = (r.getMessage() for r in caplog.records if r.name == "securenfs.nfs4")
    assert opened.startswith(f"127.0.0.1:900 krb5p OPEN: NFS4ERR_DELAY (try again later): principal {principal}: ")
    assert opened.count(principal) == 1 and "LDAP" in opened
    assert setattr_.startswith(f"127.0.0.1:900 krb5p SETATTR: NFS4ERR_DELAY (try again later): owner 'bob@{DOMAIN}': ")
    assert setattr_.count("bob@") == 1
