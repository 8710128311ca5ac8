"""The Kerberos half of the demo: the walkthrough of docs/lab.md, run as written.

A private MIT realm, slapd with RFC 2307 users (the server's LDAP ID mapping), dnsmasq
answering for the file server's name (the preflight's DNS checks), an SNTP responder, the
preflight report, the server with a krb5p export, and `securenfs probe` as a Kerberos user.
Every step is printed with its commands and their output, as an administrator following the
guide would see them; the guide's last step removes everything again.

Called by scripts/demo.py; the lab lives under the directory it is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lab_guide  # noqa: E402


def run(base: Path) -> None:
    print("\n==> the Kerberos lab of docs/lab.md, step by step (realm, LDAP, DNS, NTP, server, probe)",
          flush=True)
    result = lab_guide.run(base / "lab", sys.stdout)
    if result.returncode != 0:
        raise SystemExit(f"demo: the lab walkthrough failed with exit status {result.returncode}")
