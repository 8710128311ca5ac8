"""The interop guest image: a minimal Debian 12 with the Linux NFSv4.1 client, built once.

The image lives outside the repository, in ``$SECURENFS_INTEROP_CACHE`` or else
``/var/cache/securenfs-interop`` (when writable) or ``~/.cache/securenfs-interop``.  A build
takes a few minutes (debootstrap); later calls return at once.  The debootstrapped tree is kept,
so a change to the guest's init only re-makes the ext4 image (seconds).  Concurrent callers
(parallel pytest workers) serialise on a lock file.

Command line (as root):  python -m tests.interop.image [--force]
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUESTFS = HERE / "guestfs"
BUILD_SCRIPT = GUESTFS / "build-image.sh"
INIT_SCRIPT = GUESTFS / "init.sh"

# What the scenarios need in the guest.  python3-minimal holds the fcntl/flock lock holders and
# the restart-survival writer; the rest is the NFS client and Kerberos tooling.
GUEST_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64", "initramfs-tools", "kmod", "nfs-common", "krb5-user", "keyutils",
    "fio", "iproute2", "procps", "netbase", "e2fsprogs", "python3-minimal", "util-linux",
    "nfs4-acl-tools",
)

HOST_TOOLS: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "socat": "socat",
    "debootstrap": "debootstrap",
    "mkfs.ext4": "e2fsprogs",
}


class ImageError(RuntimeError):
    """The guest image cannot be built or used here (the message says why and what to do)."""


@dataclass(slots=True, frozen=True)
class GuestImage:
    directory: Path
    kernel: Path
    initrd: Path
    rootfs: Path
    kernel_version: str


def cache_dir() -> Path:
    env = os.environ.get("SECURENFS_INTEROP_CACHE")
    if env:
        return Path(env)
    system = Path("/var/cache/securenfs-interop")
    if system.is_dir() and os.access(system, os.W_OK):
        return system
    if os.geteuid() == 0 and os.access(system.parent, os.W_OK):
        return system
    return Path.home() / ".cache" / "securenfs-interop"


def missing_host_tools(build: bool = True) -> list[str]:
    """Debian packages whose commands are missing (build=False: only those needed to boot)."""
    need = HOST_TOOLS if build else {k: v for k, v in HOST_TOOLS.items()
                                     if k in ("qemu-system-x86_64", "socat")}
    missing = []
    for tool, pkg in need.items():
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            missing.append(pkg)
    return sorted(set(missing))


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.hexdigest()[:16]


def _mirror() -> str:
    """The Debian mirror apt on this host already uses (so a local mirror or proxy is honoured)."""
    env = os.environ.get("SECURENFS_INTEROP_MIRROR")
    if env:
        return env
    candidates: list[Path] = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        candidates += sorted(d.glob("*.sources")) + sorted(d.glob("*.list"))
    for f in candidates:
        try:
            lines = f.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            uri = ""
            if line.startswith("URIs:"):
                uri = line.split()[1] if len(line.split()) > 1 else ""
            elif line.startswith("deb "):
                words = [w for w in line.split()[1:] if not w.startswith("[")]
                uri = words[0] if words else ""
            if uri and "security" not in uri and uri.rstrip("/").endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def _existing(d: Path) -> GuestImage | None:
    files = [d / "vmlinuz", d / "initrd.img", d / "rootfs.img", d / "kernel-version"]
    if not all(f.is_file() for f in files):
        return None
    return GuestImage(d, d / "vmlinuz", d / "initrd.img", d / "rootfs.img",
                      (d / "kernel-version").read_text().strip())


def ensure_image(force: bool = False, log: Callable[[str], None] | None = None) -> GuestImage:
    """Return the cached guest image, building it first when missing or out of date."""
    say = log or (lambda m: print(m, file=sys.stderr))
    d = cache_dir()
    pkgs_key = _digest(",".join(GUEST_PACKAGES).encode())
    image_key = _digest(pkgs_key.encode(), BUILD_SCRIPT.read_bytes(), INIT_SCRIPT.read_bytes())
    stamp = d / "image.key"
    img = _existing(d)
    if not force and img is not None and stamp.is_file() and stamp.read_text().strip() == image_key:
        return img
    if os.geteuid() != 0:
        raise ImageError(
            f"the interop guest image in {d} is missing or out of date and building it needs root "
            "(debootstrap, chroot): run `sudo .venv/bin/python -m tests.interop.image` once, "
            "or set SECURENFS_INTEROP_CACHE to a directory holding a built image")
    missing = missing_host_tools(build=True)
    if missing:
        raise ImageError("missing host packages: apt-get install -y --no-install-recommends "
                         + " ".join(missing))
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Someone else may have finished the build while this process waited for the lock.
        img = _existing(d)
        if not force and img is not None and stamp.is_file() and stamp.read_text().strip() == image_key:
            return img
        pstamp = d / "packages.key"
        if force or not pstamp.is_file() or pstamp.read_text().strip() != pkgs_key:
            (d / "rootfs" / ".debootstrap-complete").unlink(missing_ok=True)
        say(f"[interop] building the guest image in {d} (first time: several minutes)")
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT), str(d), _mirror(), ",".join(GUEST_PACKAGES), str(INIT_SCRIPT)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-25:])
            raise ImageError(f"guest image build failed (rc={proc.returncode}):\n{tail}")
        pstamp.write_text(pkgs_key + "\n")
        stamp.write_text(image_key + "\n")
        img = _existing(d)
        if img is None:
            raise ImageError(f"guest image build in {d} finished without its outputs")
        say(f"[interop] guest image ready: kernel {img.kernel_version}, {img.rootfs}")
        return img


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        img = ensure_image(force="--force" in args)
    except ImageError as exc:
        print(f"interop image: {exc}", file=sys.stderr)
        return 1
    print(f"{img.directory} kernel {img.kernel_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
