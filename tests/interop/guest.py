"""Boot the interop guest under qemu, run one scenario script in it, return output and status.

Networking is qemu user-mode networking with ``restrict=on``: the guest has no route anywhere.
Each :class:`Forward` turns a TCP connection to ``10.0.2.100:<guest_port>`` inside the guest
into a connection to ``127.0.0.1:<host_port>`` on this machine (``socat``, one per connection).
Nothing else leaves the guest; UDP is dropped (so Kerberos in the guest must use TCP).
``-nodefaults`` is always passed so qemu adds no unrestricted default NIC.

The scenario script and helper files reach the guest over a 9p share, which also carries the
output, the exit status and *host requests* back: a scenario can ask the host to do something
in the middle of a run (restart the server) with ``host_request NAME`` and waits for the answer.

The accelerator is chosen automatically (:func:`choose_accelerator`) and reported in the result.
"""

from __future__ import annotations

import enum
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.interop.image import GUESTFS, GuestImage

GUEST_IP = "10.0.2.15"
#: The address at which the guest reaches the host's forwarded loopback ports.
HOST_IP = "10.0.2.100"

HostHook = Callable[[], str]


class Accel(enum.Enum):
    KVM = "kvm"
    TCG = "tcg"


@dataclass(slots=True, frozen=True)
class AccelChoice:
    accel: Accel
    reason: str

    def qemu_args(self) -> list[str]:
        if self.accel is Accel.KVM:
            # arch-capabilities=off: some nested hosts abort on MSR 0x10a with plain -cpu host.
            return ["-accel", "kvm", "-cpu", "host,arch-capabilities=off"]
        return ["-accel", "tcg,thread=multi", "-cpu", "max"]

    def __str__(self) -> str:
        return f"{self.accel.value} ({self.reason})"


def _cpu_has_virt() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return "vmx" in flags or "svm" in flags
    return False


def choose_accelerator(env: Mapping[str, str] | None = None) -> AccelChoice:
    """KVM when it will really boot a stock kernel, TCG otherwise; the reason says why.

    ``SECURENFS_INTEROP_ACCEL=kvm|tcg`` forces a choice.  /dev/kvm alone is not enough: on hosts
    whose /dev/kvm is served by kvm_pvm (software nested virtualisation, no vmx/svm in the CPU)
    a stock Debian kernel hangs right after "Probing EDD", so that counts as unusable.
    """
    env = os.environ if env is None else env
    forced = env.get("SECURENFS_INTEROP_ACCEL", "auto").lower()
    if forced == "kvm":
        return AccelChoice(Accel.KVM, "forced by SECURENFS_INTEROP_ACCEL")
    if forced == "tcg":
        return AccelChoice(Accel.TCG, "forced by SECURENFS_INTEROP_ACCEL")
    if not os.path.exists("/dev/kvm"):
        return AccelChoice(Accel.TCG, "no /dev/kvm")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelChoice(Accel.TCG, "/dev/kvm not accessible to this user")
    if os.path.isdir("/sys/module/kvm_pvm"):
        return AccelChoice(Accel.TCG, "/dev/kvm is served by kvm_pvm, under which a stock kernel hangs")
    if not _cpu_has_virt():
        return AccelChoice(Accel.TCG, "the CPU has no vmx/svm")
    return AccelChoice(Accel.KVM, "/dev/kvm with hardware virtualisation")


@dataclass(slots=True, frozen=True)
class Forward:
    """Guest ``10.0.2.100:guest_port`` -> host ``127.0.0.1:host_port`` (TCP only)."""

    guest_port: int
    host_port: int

    def netdev_rule(self) -> str:
        for p in (self.guest_port, self.host_port):
            if not (isinstance(p, int) and 0 < p < 65536):
                raise ValueError(f"bad port {p!r} in forward {self}")
        # The command is run by qemu through /bin/sh for each connection the guest opens.
        return f"guestfwd=tcp:{HOST_IP}:{self.guest_port}-cmd:socat STDIO TCP4:127.0.0.1:{self.host_port}"


@dataclass(slots=True)
class GuestResult:
    rc: int
    output: str
    accel: AccelChoice
    wall_seconds: float
    boot_seconds: float | None = None  # guest uptime when the scenario started
    timed_out: bool = False
    console_tail: str = ""
    requests: list[str] = field(default_factory=list)
    #: (name, host time.time()) for every ``mark NAME`` the scenario made, in order.
    marks: list[tuple[str, float]] = field(default_factory=list)

    @property
    def booted(self) -> bool:
        return self.boot_seconds is not None

    def summary(self) -> str:
        boot = f"{self.boot_seconds:.1f}s" if self.boot_seconds is not None else "never"
        return (f"guest accel={self.accel} boot-to-scenario={boot} wall={self.wall_seconds:.1f}s "
                f"rc={self.rc}{' (timed out)' if self.timed_out else ''}")


def netdev_spec(forwards: list[Forward]) -> str:
    spec = "user,id=n0,restrict=on,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off"
    for f in forwards:
        spec += "," + f.netdev_rule()
    return spec


def qemu_command(image: GuestImage, share: Path, forwards: list[Forward], accel: AccelChoice,
                 memory_mb: int, cpus: int, console: Path) -> list[str]:
    return [
        "qemu-system-x86_64", "-name", "securenfs-interop",
        *accel.qemu_args(),
        "-m", str(memory_mb), "-smp", str(cpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", ("root=/dev/vda rw console=ttyS0 panic=-1 quiet "
                    "init=/sbin/securenfs-interop-init"),
        # snapshot=on: writes go to a temporary overlay, so the cached image never changes and
        # several guests can boot from it at once.
        "-drive", f"file={image.rootfs},if=virtio,format=raw,snapshot=on",
        "-virtfs", f"local,path={share},mount_tag=interop,security_model=none,id=interop",
        "-netdev", netdev_spec(forwards), "-device", "virtio-net-pci,netdev=n0",
        "-device", "virtio-rng-pci",
        "-serial", f"file:{console}",
    ]


def _env_file(values: Mapping[str, str]) -> str:
    lines = []
    for k, v in values.items():
        if not k.replace("_", "").isalnum() or k[0].isdigit():
            raise ValueError(f"bad guest environment name {k!r}")
        lines.append(f"export {k}={shlex.quote(v)}")
    return "\n".join(lines) + "\n"


class Guest:
    """Runs scenario scripts in fresh boots of ``image``."""

    def __init__(self, image: GuestImage, accel: AccelChoice | None = None,
                 memory_mb: int = 1024, cpus: int = 2, workdir: Path | None = None):
        self.image = image
        self.accel = accel or choose_accelerator()
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.workdir = workdir

    def run(self, script: str | Path, *, env: Mapping[str, str] | None = None,
            files: Mapping[str, bytes | Path] | None = None, forwards: list[Forward] | None = None,
            hostname: str = "client.interop.test", server_names: str = "",
            hooks: Mapping[str, HostHook] | None = None, timeout: float = 600.0,
            on_output: Callable[[str], None] | None = None) -> GuestResult:
        """Boot, run ``script`` (bash text or a file) as root, power off.

        ``files`` maps absolute guest paths to contents copied in before the script runs (e.g.
        ``/etc/krb5.keytab``).  ``server_names`` are put in the guest's /etc/hosts for the host
        address.  ``hooks`` answer host requests.  The return code is the script's, 124 when
        the run timed out, 125 when the guest never reached the script.
        """
        share = Path(tempfile.mkdtemp(prefix="securenfs-interop-", dir=self.workdir))
        try:
            return self._run(share, script, env or {}, files or {}, forwards or [], hostname,
                             server_names, hooks or {}, timeout, on_output)
        finally:
            if os.environ.get("SECURENFS_INTEROP_KEEP") == "1":
                print(f"[interop] share kept: {share}")
            else:
                shutil.rmtree(share, ignore_errors=True)

    def _run(self, share: Path, script: str | Path, env: Mapping[str, str],
             files: Mapping[str, bytes | Path], forwards: list[Forward], hostname: str,
             server_names: str, hooks: Mapping[str, HostHook], timeout: float,
             on_output: Callable[[str], None] | None) -> GuestResult:
        text = script.read_text() if isinstance(script, Path) else script
        (share / "scenario.sh").write_text(text)
        for name in ("boot.sh", "lib.sh"):
            shutil.copy(GUESTFS / name, share / name)
        (share / "req").mkdir()
        root = share / "files"
        for dest, content in files.items():
            if not dest.startswith("/") or ".." in dest.split("/"):
                raise ValueError(f"guest file path must be absolute: {dest!r}")
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
            target.chmod(0o600 if "keytab" in dest else 0o644)
        meta = {
            "INTEROP_HOSTNAME": hostname,
            "INTEROP_GUEST_IP": GUEST_IP,
            "INTEROP_HOST_IP": HOST_IP,
            "INTEROP_SERVER_NAMES": server_names,
            "INTEROP_DATE": str(int(time.time())),
        }
        (share / "meta.env").write_text(_env_file(meta))
        (share / "scenario.env").write_text(_env_file(env))
        console = share / "console.log"
        cmd = qemu_command(self.image, share, forwards, self.accel, self.memory_mb, self.cpus, console)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        timed_out = False
        handled: list[str] = []
        marks: list[tuple[str, float]] = []
        out_pos = 0
        out_path = share / "out"
        try:
            while proc.poll() is None:
                if time.monotonic() - t0 > timeout:
                    timed_out = True
                    break
                self._serve_requests(share / "req", hooks, handled, marks)
                if on_output is not None and out_path.exists():
                    with open(out_path, "rb") as f:
                        f.seek(out_pos)
                        chunk = f.read()
                    if chunk:
                        out_pos += len(chunk)
                        on_output(chunk.decode(errors="replace"))
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
            qemu_out = proc.communicate()[0].decode(errors="replace")
        wall = time.monotonic() - t0
        output = out_path.read_bytes().decode(errors="replace") if out_path.exists() else ""
        if on_output is not None and len(output.encode()) > out_pos:
            on_output(output.encode()[out_pos:].decode(errors="replace"))
        boot = None
        if (share / "t_start").exists():
            try:
                boot = float((share / "t_start").read_text().split()[0])
            except (ValueError, IndexError):
                boot = None
        console_tail = ""
        if console.exists():
            console_tail = "\n".join(console.read_text(errors="replace").splitlines()[-40:])
        if qemu_out.strip():
            console_tail = f"{console_tail}\n[qemu] {qemu_out.strip()}"
        rc_file = share / "rc"
        if timed_out:
            rc = 124
        elif rc_file.exists() and rc_file.read_text().strip().lstrip("-").isdigit():
            rc = int(rc_file.read_text().strip())
        else:
            rc = 125
        return GuestResult(rc=rc, output=output, accel=self.accel, wall_seconds=wall,
                           boot_seconds=boot, timed_out=timed_out, console_tail=console_tail,
                           requests=handled, marks=marks)

    @staticmethod
    def _serve_requests(req_dir: Path, hooks: Mapping[str, HostHook], handled: list[str],
                        marks: list[tuple[str, float]]) -> None:
        for req in sorted(req_dir.glob("*.req")):
            name = req.name[: -len(".req")]
            if name.startswith("mark-"):
                # A time stamp in host time, to attribute the server traffic to a check.
                marks.append((name.split("-", 2)[-1], time.time()))
                req.rename(req_dir / f"{name}.done")
                continue
            hook = hooks.get(name)
            try:
                answer = hook() if hook is not None else f"ERROR no host hook named {name!r}"
            except Exception as exc:  # noqa: BLE001  (the guest must get an answer, never wait forever)
                answer = f"ERROR {type(exc).__name__}: {exc}"
            handled.append(f"{name}: {answer.splitlines()[0] if answer else ''}")
            tmp = req_dir / f"{name}.tmp"
            tmp.write_text(answer + "\n")
            req.unlink()
            tmp.rename(req_dir / f"{name}.done")
