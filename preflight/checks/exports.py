"""EXP-*, LEASE-*, STATE-001: exports, lease/grace times and the state directory."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from preflight.context import RunContext
from preflight.registry import check
from preflight.result import Result, Severity, critical, error, ok, warning

# Checks a Kerberos flavor depends on; the start-up gate uses the same list.
KERBEROS_PREREQUISITES = (
    "TIME-001",
    "TIME-004",
    "KRB-001",
    "KRB-004",
    "KDC-001",
    "KT-001",
    "KT-002",
    "KT-003",
    "KDC-002",
    "KT-006",
    "GSS-001",
)

VOLATILE_FS = {"tmpfs", "ramfs", "devtmpfs", "overlay-tmpfs"}


#: statfs(2) f_type of file systems that carry POSIX and OFD byte-range locks to every node
#: that mounts them (the lock is taken by the cluster, not by one kernel).
LOCK_PROPAGATING_FS = {
    0x00C36400: "ceph",
    0x01161970: "gfs2",
    0x47504653: "gpfs",
    0x6969: "nfs",
    0x7461636F: "ocfs2",
}
#: ... and of local file systems, whose locks only the kernel of the node that mounts them sees.
LOCAL_FS = {
    0xEF53: "ext2/3/4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x01021994: "tmpfs",
    0x858458F6: "ramfs",
    0x2FC12FC1: "zfs",
    0xF2F52010: "f2fs",
    0x794C7630: "overlayfs",
}


def statfs_type(path: Path) -> int | None:
    """statfs(2) ``f_type`` of the file system holding ``path`` (None when it cannot be read).
    ``f_type`` is the first field of struct statfs, a C long, on every Linux architecture."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = ctypes.create_string_buffer(256)  # larger than struct statfs everywhere
    if libc.statfs(os.fsencode(path), buf) != 0:
        return None
    return int(ctypes.c_long.from_buffer(buf).value) & 0xFFFFFFFF


def _kerberos_requires(ctx: RunContext) -> tuple[str, ...]:
    return KERBEROS_PREREQUISITES if any(e.kerberos for e in ctx.settings.exports) else ()


@check("EXP-001", "ExportPathsExist")
def paths_exist(ctx: RunContext) -> list[Result]:
    """Every export path exists and is a directory."""
    out = []
    for e in ctx.settings.exports:
        if not e.path.is_dir():
            why = "does not exist" if not e.path.exists() else "is not a directory"
            out.append(
                Result(
                    "EXP-001",
                    Severity.CRITICAL,
                    f"export {e.pseudo}: {e.path} {why}",
                    remedy=f"Create {e.path} or fix the export's path.",
                    key=e.pseudo,
                )
            )
        else:
            out.append(
                Result(
                    "EXP-001",
                    Severity.OK,
                    f"export {e.pseudo}: {e.path} is a directory",
                    key=e.pseudo,
                )
            )
    return out or [ok("EXP-001", "no exports configured")]


@check("EXP-002", "KerberosExportsServable", requires=_kerberos_requires)
def kerberos_servable(ctx: RunContext) -> list[Result]:
    """Each Kerberos export's flavors can be served: every Kerberos check it depends on passed."""
    out = [
        Result(
            "EXP-002",
            Severity.OK,
            f"export {e.pseudo} can serve {', '.join(e.flavors)}",
            key=e.pseudo,
        )
        for e in ctx.settings.exports
        if e.kerberos
    ]
    return out or [ok("EXP-002", "no Kerberos exports configured")]


@check("EXP-003", "AuthSysOnKerberosServer")
def auth_sys(ctx: RunContext) -> list[Result]:
    """AUTH_SYS exports on a server that does Kerberos trust client-supplied uids."""
    exports = ctx.settings.exports
    kerberised = any(e.kerberos for e in exports) or bool(ctx.settings.principals)
    out = []
    for e in exports:
        if e.auth_sys and kerberised:
            mixed = " alongside Kerberos" if e.kerberos else ""
            out.append(
                Result(
                    "EXP-003",
                    Severity.WARNING,
                    f"export {e.pseudo} allows AUTH_SYS{mixed}",
                    "AUTH_SYS trusts whatever uid the client claims; any host that can reach the "
                    "server can act as any user on this export.",
                    f"Remove 'sys' from export {e.pseudo} unless it is meant for trusted hosts only.",
                    key=e.pseudo,
                )
            )
    return out or [ok("EXP-003", "no AUTH_SYS exports on this Kerberos server")]


@check("EXP-004", "LocksClusterSafe")
def locks_cluster_safe(ctx: RunContext) -> list[Result]:
    """With the etcd backend (several nodes, one namespace), byte-range locks are correct
    across nodes only where the exported file system carries the kernel's locks to every
    node; OPEN deny modes are never shared between nodes."""
    if ctx.settings.recovery_backend != "etcd":
        return [ok("EXP-004", f"one node ({ctx.settings.recovery_backend} recovery store): locks and deny "
                              "modes are decided by this server and its kernel")]
    deny_note = ("OPEN deny modes (share reservations) are kept by each node for itself: a DENY_WRITE "
                 "open on one node does not stop a write open on another.")
    out = []
    for e in ctx.settings.exports:
        magic = statfs_type(e.path)
        name = LOCK_PROPAGATING_FS.get(magic or 0) or LOCAL_FS.get(magic or 0)
        if magic in LOCK_PROPAGATING_FS:
            out.append(Result("EXP-004", Severity.OK,
                              f"export {e.pseudo}: {name} carries byte-range locks to every node", deny_note,
                              key=e.pseudo, kw={"fs": name}))
        elif magic in LOCAL_FS:
            out.append(Result(
                "EXP-004", Severity.WARNING,
                f"export {e.pseudo}: {name} is local to one node; its byte-range locks are not cluster-wide",
                "Two nodes serving this export at the same time (active/active) could both grant a lock "
                "on the same range. " + deny_note,
                f"Serve {e.path} from one node at a time (active/passive), or export it from a cluster "
                "file system (CephFS, GFS2, GPFS, OCFS2, NFS-backed storage).",
                key=e.pseudo, kw={"fs": name}))
        else:
            what = "cannot be read" if magic is None else f"is of unknown type {magic:#x}"
            out.append(Result(
                "EXP-004", Severity.WARNING,
                f"export {e.pseudo}: the file system of {e.path} {what}; cluster-wide locks are not known",
                "Byte-range locks are cluster-wide only on file systems that carry them to every node. "
                + deny_note,
                f"Check that {e.path} is on a cluster file system, or serve it from one node at a time.",
                key=e.pseudo, kw={"fs": magic}))
    return out or [ok("EXP-004", "no exports configured")]


@check("LEASE-001", "LeaseTime")
def lease(ctx: RunContext) -> Result:
    """lease_time long enough that stalled clients keep their state (knfsd default 90 s)."""
    lt = ctx.settings.lease_time
    remedy = "Use 60-90 s (lease_time in [server])."
    if lt < 10:
        return error(
            "LEASE-001",
            f"lease_time {lt} s is far too short",
            "Clients that pause lose opens and locks.",
            remedy,
            lease_time=lt,
        )
    if lt < 30:
        return warning(
            "LEASE-001",
            f"lease_time {lt} s is below 30 s",
            f"A client stalled for more than {lt} s (GC pause, network blip) loses opens and locks.",
            remedy,
            lease_time=lt,
        )
    return ok("LEASE-001", f"lease_time {lt} s", lease_time=lt)


@check("LEASE-002", "GraceTime")
def grace(ctx: RunContext) -> Result:
    """grace_time of at least 30 s and at least one lease, so clients can reclaim after a restart."""
    gt, lt = ctx.settings.grace_time, ctx.settings.lease_time
    if gt < lt:
        return error(
            "LEASE-002",
            f"grace_time {gt} s is shorter than lease_time {lt} s",
            "Clients that renew once per lease may miss the grace period and lose their locks.",
            f"Set grace_time >= lease_time ({lt} s).",
            grace_time=gt,
        )
    if gt < 30:
        return warning(
            "LEASE-002",
            f"grace_time {gt} s is below 30 s",
            "Clients may not notice the restart in time to reclaim.",
            "Use 60-90 s.",
            grace_time=gt,
        )
    return ok("LEASE-002", f"grace_time {gt} s", grace_time=gt)


def fs_type(path: Path) -> str:
    """File system type of the mount holding ``path`` (longest mount-point prefix)."""
    best, best_type = "", ""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(
                    best
                ):
                    best, best_type = mnt, parts[2]
    except OSError:
        return ""
    return best_type


@check("STATE-001", "StateDirDurable")
def state_dir(ctx: RunContext) -> Result:
    """The state directory is writable, supports fsync and rename, and survives a reboot."""
    d = ctx.settings.state_dir
    if not d.exists():
        parent = d.parent
        if parent.is_dir() and os.access(parent, os.W_OK):
            return warning(
                "STATE-001",
                f"state directory {d} does not exist yet",
                remedy=f"It will be created at start; create it now with `install -d -m 700 {d}`.",
            )
        return critical(
            "STATE-001",
            f"state directory {d} does not exist and cannot be created",
            remedy=f"Create it: `install -d -m 700 {d}`.",
        )
    if not d.is_dir():
        return critical("STATE-001", f"state directory {d} is not a directory")
    probe = d / f".preflight-{os.getpid()}"
    try:
        with open(probe.with_suffix(".tmp"), "wb") as f:
            f.write(b"probe")
            f.flush()
            os.fsync(f.fileno())
        os.replace(probe.with_suffix(".tmp"), probe)
        probe.unlink()
    except OSError as exc:
        for p in (probe, probe.with_suffix(".tmp")):
            try:
                p.unlink()
            except OSError:
                pass
        return critical(
            "STATE-001",
            f"state directory {d} is not writable: {exc.strerror or exc}",
            "Client records cannot be stored; reclaim after restart is impossible.",
            f"Give the server's user write access to {d}.",
        )
    t = fs_type(d)
    if t in VOLATILE_FS:
        return error(
            "STATE-001",
            f"state directory {d} is on {t}, which is lost at reboot",
            "After a reboot the server forgets its clients and must refuse or wrongly grant reclaims.",
            "Put state_dir on persistent storage (e.g. /var/lib/securenfs).",
            fs=t,
        )
    return ok("STATE-001", f"state directory {d} is writable and persistent ({t or 'unknown fs'})")
