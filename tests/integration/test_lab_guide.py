"""docs/lab.md, run as written: its shell blocks in one bash, with a private directory and free
ports, against the real MIT KDC, slapd, dnsmasq, an SNTP responder and the server, ending with
`securenfs probe` over krb5p.  If the guide goes stale, this fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lab_guide() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lab_guide", ROOT / "scripts" / "lab_guide.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("lab_guide", mod)
    spec.loader.exec_module(mod)
    return mod


lab_guide = _lab_guide()


def section(output: str, heading: str) -> str:
    """The output of one ``==> heading`` section of the walkthrough."""
    parts = re.split(r"^==> ", output, flags=re.M)
    return "".join(p for p in parts if p.startswith(heading))


def test_guide_blocks_are_localised_to_free_ports(tmp_path: Path) -> None:
    blocks = lab_guide.blocks((ROOT / "docs" / "lab.md").read_text())
    local = lab_guide.localise(blocks, tmp_path / "lab", {"KDC_PORT": 1, "LDAP_PORT": 2, "DNS_PORT": 3,
                                                          "NTP_PORT": 4, "NFS_PORT": 5})
    assert f"export LAB={tmp_path / 'lab'}" in local[0].code
    assert "KDC_PORT=1 LDAP_PORT=2 DNS_PORT=3 NTP_PORT=4 NFS_PORT=5" in local[0].code
    assert blocks[-1].heading.endswith("Tear down") and local[1:] == blocks[1:]


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab runs as root (chown, daemons)")
def test_lab_walkthrough_runs_as_written(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    result = lab_guide.run(lab, timeout=240)
    out = result.stdout
    assert result.returncode == 0, out[-6000:]

    # 2-3: the realm and the directory answer.
    assert "nfs/nfs1.lab.test@LAB.TEST" in section(out, "2. A Kerberos realm")
    assert "uidNumber: 5001" in section(out, "3. An LDAP directory")

    # 7: every check passes, DNS, NTP and LDAP included (none is skipped).
    report = section(out, "7. The preflight report")
    assert re.search(r"0 critical, 0 errors, 0 warnings, \d+ ok \(", report), report
    assert "skipped" not in report
    for check in ("TIME-001", "TIME-004", "DNS-002", "DNS-003", "HOSTS-001", "KT-006", "GSS-001", "LDAP-006",
                  "IDM-003"):
        assert re.search(rf"^OK +{check} ", report, re.M), check
    assert "probe user alice resolves to uid 5001" in report  # through slapd

    # 8: the krb5p export is on once the start-up checks are done.
    status = section(out, "8. Start the server")
    assert "[on ] /home" in status and "sec=krb5p,krb5i" in status
    assert re.search(r"^preflight: done.*; Kerberos on$", status, re.M), status

    # 9: alice over krb5p, mapped through LDAP both ways (RFC 8881 §5.9 owner strings).
    probe = section(out, "9. Probe it as alice")
    assert "as          alice@LAB.TEST" in probe and "security    krb5p" in probe
    assert "export      /home/alice allows krb5p, krb5i (SECINFO_NO_NAME)" in probe
    assert re.search(r"-rw-r--r--  alice@lab\.test +staff@lab\.test +17  hello\.txt", probe), probe
    assert "read back identical, owner alice@lab.test group staff@lab.test, removed" in probe
    assert "result      OK" in probe
    # ... and the two mistakes, explained.
    assert "likely cause: /home does not allow sys; the export allows krb5p, krb5i" in probe
    assert "fix: rerun with --sec krb5p" in probe and "exit status 5" in probe
    assert "FAILED at list: READDIR: NFS4ERR_ACCESS" in probe
    assert "may not read /home/bob" in probe and "exit status 1" in probe

    log = section(out, "9. Probe it as alice")
    assert "alice@LAB.TEST: GSS context established with nfs/nfs1.lab.test@LAB.TEST" in log
    assert "preflight finished: every export serves all its flavors" in log

    # 10: the teardown removed everything.
    assert "==> 10. Tear down" in out and not lab.exists()
