#!/usr/bin/env python3
"""Run the shell blocks of docs/lab.md as one root shell would, with free ports.

The guide's ```sh blocks are run in order by one bash (``set -euo pipefail``) from the top of
the repository.  Its first block chooses the lab directory and the ports; they are replaced
here by a directory of the caller's choice and free ports, so the walkthrough can run next to
anything else.  The last block (the "Tear down" section) runs on every exit, also after a
failure, and then prints the server's and the KDC's logs.

Used by `make demo` (scripts/demo_krb5.py) and tests/integration/test_lab_guide.py:

    scripts/lab_guide.py [--lab DIR]       # run the walkthrough, echoing each block
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "lab.md"
TEARDOWN_HEADING = "Tear down"
#: Address the guide gives the file server (it must also be free on the chosen port).
NFS_ADDR = "127.0.0.10"

_FENCE = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)
_HEADING = re.compile(r"^## (.+)$", re.M)
_PORT = re.compile(r"\b([A-Z]+_PORT)=\d+")
_LAB = re.compile(r"^(export LAB=)\S+", re.M)


@dataclass(frozen=True)
class Block:
    heading: str
    code: str


def blocks(text: str) -> list[Block]:
    """The ```sh blocks of the guide, each with the ``##`` heading it stands under."""
    out = []
    for m in _FENCE.finditer(text):
        headings = _HEADING.findall(text, 0, m.start())
        out.append(Block(headings[-1] if headings else "", m.group(1)))
    return out


def _free(port: int, kinds: Iterable[int], addrs: Iterable[str]) -> bool:
    for addr in addrs:
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((addr, port))
                except OSError:
                    return False
    return True


def free_ports(names: Iterable[str]) -> dict[str, int]:
    """A free port (TCP and UDP, on 127.0.0.1 and the file server's address) for each name."""
    ports: dict[str, int] = {}
    for name in names:
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in ports.values() and _free(port, (socket.SOCK_STREAM, socket.SOCK_DGRAM),
                                                    ("127.0.0.1", NFS_ADDR)):
                ports[name] = port
                break
        else:
            raise RuntimeError(f"no free port for {name}")
    return ports


def localise(guide: list[Block], lab: Path, ports: dict[str, int] | None = None) -> list[Block]:
    """The guide with its first block pointing at ``lab`` and at free ports."""
    first = guide[0].code
    if not _LAB.search(first):
        raise ValueError("the guide's first block does not set LAB")
    names = _PORT.findall(first)
    ports = ports or free_ports(names)
    first = _LAB.sub(lambda m: m.group(1) + shlex.quote(str(lab)), first)
    first = _PORT.sub(lambda m: f"{m.group(1)}={ports[m.group(1)]}", first)
    return [Block(guide[0].heading, first), *guide[1:]]


_HEREDOC = re.compile(r"<<\s*'?(\w+)'?")


def shown(code: str) -> str:
    """A block as a terminal shows it: ``$ `` before each command, not before the lines of
    a here-document, a continued line or a loop's body."""
    out: list[str] = []
    heredoc: str | None = None
    depth = 0
    for line in code.splitlines():
        inside = heredoc is not None or depth > 0 or (out and out[-1].endswith("\\"))
        out.append(("  " if inside else "$ ") + line)
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        m = _HEREDOC.search(line)
        if m:
            heredoc = m.group(1)
        if re.search(r"\bdo$", line.split("#")[0].rstrip()):
            depth += 1
        elif line.strip() == "done":
            depth -= 1
    return "".join(line + "\n" for line in out)


def script(guide: list[Block], *, echo: bool = True) -> str:
    """One bash script: the walkthrough, with the teardown block trapped on exit."""
    *steps, last = guide
    if last.heading.split(". ", 1)[-1] != TEARDOWN_HEADING:
        raise ValueError(f"the guide's last block is not under '{TEARDOWN_HEADING}'")
    parts = [
        "set -euo pipefail",
        "lab_teardown() {",
        "    status=$?",
        "    set +e",
        "    if [ $status -ne 0 ] && [ -n \"${LAB:-}\" ]; then",
        "        echo \"--- the walkthrough failed (status $status); logs:\"",
        "        for f in server.log kdc/kdc.log ntp.log; do",
        "            [ -f \"$LAB/$f\" ] && { echo \"--- $f\"; tail -n 40 \"$LAB/$f\"; }",
        "        done",
        "    fi",
        f"    echo; echo {shlex.quote('==> ' + last.heading)}",
        *("    " + line for line in last.code.splitlines()),
        "    exit $status",
        "}",
        "trap lab_teardown EXIT",
    ]
    heading = None
    for b in steps:
        if b.heading != heading:
            parts.append(f"echo; echo {shlex.quote('==> ' + b.heading)}")
            heading = b.heading
        elif echo:
            parts.append("echo")
        if echo:
            parts.append(f"cat <<'__LAB_BLOCK__'\n{shown(b.code)}__LAB_BLOCK__")
        parts.append(b.code)
    return "\n".join(parts) + "\n"


def run(lab: Path, out: TextIO | None = None, *, echo: bool = True, timeout: float = 300,
        guide_path: Path = GUIDE) -> subprocess.CompletedProcess[str]:
    """Run the walkthrough in ``lab`` (created by the guide, removed by its teardown).

    With ``out`` the output streams there as it comes; it is also returned.
    """
    text = script(localise(blocks(guide_path.read_text()), lab), echo=echo)
    proc = subprocess.Popen(["bash", "-c", text], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    assert proc.stdout is not None
    # Past the timeout the whole walkthrough (its process group) is killed, which ends the
    # output; the daemons it started are then stopped by their pid files below.
    watchdog = threading.Timer(timeout, lambda: _kill_group(proc.pid))
    watchdog.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if out is not None:
                out.write(line)
                out.flush()
        proc.wait()
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        watchdog.cancel()
        _kill_leftovers(lab)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), "")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill_leftovers(lab: Path) -> None:
    """The guide's daemons, by their pid files, if its teardown did not run."""
    for rel in ("server.pid", "ntp.pid", "dnsmasq.pid", "ldap/slapd.pid", "kdc/krb5kdc.pid"):
        try:
            pid = int((lab / rel).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", type=Path, help="directory for the lab (default: a new temporary one)")
    args = ap.parse_args()
    lab = args.lab or Path(tempfile.mkdtemp(prefix="securenfs-lab-"))
    return run(lab, sys.stdout).returncode


if __name__ == "__main__":
    sys.exit(main())
