"""Admin actions on the protocol state: the clients view, one client's state per file, the
locks on a file, expiring a client, and taking over a failed node's clients.

All of them read or change the tables on the event-loop thread (the admin socket runs
there), so what they see is one consistent moment.  Paths are looked up in the thread pool
(the file system may be slow).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securenfs.admin.socket import AdminRequest
from securenfs.locking.stateids import Revoked
from securenfs.state.opens import LockState
from securenfs.vfs.errors import FsError
from securenfs.vfs.local import LocalFs

if TYPE_CHECKING:
    from securenfs.nfs4.service import Nfs4Service
    from securenfs.state.clients import Client
    from securenfs.state.opens import ClientState, FileState, OpenState

log = logging.getLogger("securenfs.admin")

#: OPEN4_SHARE_ACCESS / OPEN4_SHARE_DENY bits as the views print them (RFC 8881 §18.16.1).
_SHARE = {0: "none", 1: "read", 2: "write", 3: "both"}


class AdminError(Exception):
    """A request the admin can fix (unknown client, path outside every export)."""


def register(server: Any) -> None:
    """Add the actions to ``server.admin`` (a securenfs.server.Server)."""
    adm = server.admin

    def service() -> Nfs4Service:
        svc: Nfs4Service | None = server.nfs.service
        if svc is None:
            raise AdminError("the NFS service is not running yet")
        return svc

    async def clients(req: AdminRequest) -> dict[str, Any]:
        return _answer(lambda: {"ok": True, "clients": clients_view(service())})

    async def client(req: AdminRequest) -> dict[str, Any]:
        try:
            svc = service()
            c = find_client(svc, req.arg)
        except AdminError as exc:
            return {"ok": False, "error": str(exc)}
        states = client_states(svc, c)
        await _fill_paths(svc, states)
        return {"ok": True, "client": client_summary(svc, c), "states": states}

    async def locks(req: AdminRequest) -> dict[str, Any]:
        try:
            svc = service()
            fs, fh = await asyncio.get_running_loop().run_in_executor(None, fh_of_path, svc, req.arg)
        except AdminError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "path": req.arg, "export": fs.export.pseudo, "holders": file_holders(svc, fh)}

    async def expire(req: AdminRequest) -> dict[str, Any]:
        return _answer(lambda: expire_client(service(), req))

    async def take_over(req: AdminRequest) -> dict[str, Any]:
        node = req.arg
        rec = server.recovery
        if not node:
            return {"ok": False, "error": "name the failed node: securenfs take-over NODE"}
        if rec is None:
            return {"ok": False, "error": "client recovery is not running"}
        from securenfs.recovery.errors import RecoveryError

        try:
            n = await rec.take_over(node)
        except RecoveryError as exc:
            return {"ok": False, "error": str(exc)}
        log.warning("admin (uid %s): took over node %r: %d client(s) may reclaim here; grace period "
                    "enforced", req.uid, node, n)
        return {"ok": True, "node": node, "clients": n, "grace": rec.status()}

    adm.add_action("clients", clients)
    adm.add_action("client", client)
    adm.add_action("locks", locks)
    adm.add_action("expire", expire)
    adm.add_action("take-over", take_over)


def _answer(fn: Any) -> dict[str, Any]:
    try:
        out: dict[str, Any] = fn()
    except AdminError as exc:
        return {"ok": False, "error": str(exc)}
    return out


def owner_text(owner: bytes) -> str:
    """An opaque owner as text: UTF-8 where it is, escapes elsewhere (never a Python repr)."""
    return owner.decode("utf-8", "backslashreplace")


def _state_of(svc: Nfs4Service, c: Client) -> ClientState | None:
    return svc.state.clients.get(c.clientid)


def client_summary(svc: Nfs4Service, c: Client) -> dict[str, Any]:
    cs = _state_of(svc, c)
    left = svc.lease_time - (time.monotonic() - c.last_renew)
    return {
        "id": f"{c.clientid:#018x}",
        "owner": owner_text(c.ownerid),
        "principal": c.principal,
        "address": c.peer,
        "confirmed": c.confirmed,
        "lease_left": round(max(0.0, left), 1),
        "courtesy": bool(cs) and left < 0,
        "sessions": len(c.sessions),
        "opens": len(cs.opens) if cs is not None else 0,
        "locks": len(cs.locks) if cs is not None else 0,
        "lock_ranges": cs.nranges if cs is not None else 0,
        "revoked": len(cs.revoked) if cs is not None else 0,
        "implementation": owner_text(getattr(c.impl, "name", b"")) if c.impl is not None else "",
    }


def clients_view(svc: Nfs4Service) -> list[dict[str, Any]]:
    return [client_summary(svc, c) for c in svc.clients.clients()]


def find_client(svc: Nfs4Service, text: str) -> Client:
    """A client by its id (hex as the views print it, or decimal) or by its owner string."""
    t = text.strip()
    if not t:
        raise AdminError("name a client: its id (see `securenfs clients`) or its owner string")
    cid: int | None
    try:
        cid = int(t, 0)
    except ValueError:
        cid = None
    if cid is not None:
        c = svc.clients.get(cid)
        if c is not None:
            return c
    matches = [c for c in svc.clients.clients() if owner_text(c.ownerid) == t]
    confirmed = [c for c in matches if c.confirmed]
    if confirmed or matches:
        return (confirmed or matches)[0]
    raise AdminError(f"no client {t!r}; `securenfs clients` lists them")


def _open_entry(st: OpenState) -> dict[str, Any]:
    return {"kind": "open", "stateid": st.other.hex(), "seqid": st.seqid, "owner": owner_text(st.owner.owner),
            "access": _SHARE.get(st.access, str(st.access)), "deny": _SHARE.get(st.deny, str(st.deny)),
            "revoked": st.revoked.name if st.revoked else "", "_node": st.node}


def _lock_entry(ls: LockState) -> dict[str, Any]:
    ranges = ls.file.locks.ranges(ls.owner.key)
    return {"kind": "lock", "stateid": ls.other.hex(), "seqid": ls.seqid, "owner": owner_text(ls.owner.owner),
            "ranges": [_range(r) for r in ranges], "revoked": ls.revoked.name if ls.revoked else "",
            "_node": ls.open.node}


def _range(r: tuple[int, int, Any]) -> dict[str, Any]:
    start, end, lt = r
    return {"type": "write" if int(lt) in (2, 4) else "read", "offset": start,
            "length": "EOF" if end >= 1 << 64 else end - start}


def client_states(svc: Nfs4Service, c: Client) -> list[dict[str, Any]]:
    """Every open, lock and revoked stateid of a client, one entry each, with its file."""
    cs = _state_of(svc, c)
    if cs is None:
        return []
    out: list[dict[str, Any]] = [_open_entry(st) for st in cs.opens.values()]
    out += [_lock_entry(ls) for ls in cs.locks.values()]
    for rv in cs.revoked.values():
        out.append(_lock_entry(rv) if isinstance(rv, LockState) else _open_entry(rv))
    return out


async def _fill_paths(svc: Nfs4Service, entries: list[dict[str, Any]]) -> None:
    """Replace each entry's node by the file's export and path (where it can be found)."""
    loop = asyncio.get_running_loop()
    nodes = {id(e["_node"]): e["_node"] for e in entries}
    paths = await loop.run_in_executor(None, _paths_of, list(nodes.values()))
    for e in entries:
        node = e.pop("_node")
        e["export"] = node.export.pseudo if node is not None and node.export is not None else ""
        e["path"] = paths.get(id(node), "")


def _paths_of(nodes: Iterable[Any]) -> dict[int, str]:
    out: dict[int, str] = {}
    for node in nodes:
        if node is None or node.fs is None:
            continue
        try:
            with node.fs.resolved(node.fh) as (fd, _st):
                out[id(node)] = os.readlink(f"/proc/self/fd/{fd}")
        except (FsError, OSError):
            out[id(node)] = "(removed)"
    return out


def fh_of_path(svc: Nfs4Service, path: str) -> tuple[LocalFs, bytes]:
    """The export holding a local path, and the file's handle."""
    if not path:
        raise AdminError("name a file: securenfs locks PATH (a path on the server)")
    p = Path(os.path.abspath(path))
    best: LocalFs | None = None
    for fs in svc.ns.fs.values():
        if not isinstance(fs, LocalFs):
            continue  # not a local directory (an in-memory tree has no server path)
        root = Path(fs.export.path)
        if (p == root or root in p.parents) and (best is None or len(str(root)) > len(str(best.export.path))):
            best = fs
    if best is None:
        raise AdminError(f"{p} is in no export")
    try:
        return best, best.fh_for_path(p)
    except FsError as exc:
        raise AdminError(f"{p}: {exc}") from None


def file_holders(svc: Nfs4Service, fh: bytes) -> list[dict[str, Any]]:
    """Who holds what on one file: share reservations (opens) and byte-range locks."""
    f: FileState | None = svc.state.files.get(fh)
    if f is None:
        return []
    out: list[dict[str, Any]] = []
    for cs in svc.state.clients.values():
        for st in cs.opens.values():
            if st.file is f:
                out.append(_holder(svc, cs.clientid, _open_entry(st)))
        for ls in cs.locks.values():
            if ls.file is f:
                out.append(_holder(svc, cs.clientid, _lock_entry(ls)))
    return out


def _holder(svc: Nfs4Service, clientid: int, entry: dict[str, Any]) -> dict[str, Any]:
    entry.pop("_node", None)
    c = svc.clients.get(clientid)
    entry["client"] = f"{clientid:#018x}"
    entry["principal"] = c.principal if c is not None else ""
    entry["address"] = c.peer if c is not None else ""
    return entry


def expire_client(svc: Nfs4Service, req: AdminRequest) -> dict[str, Any]:
    """Revoke every open and lock of a client at once, as the courteous server does when an
    expired client's state conflicts (RFC 8881 §8.3).  The client record stays, so the
    client learns of it in SEQUENCE's status flags: EXPIRED_ALL_STATE_REVOKED when its lease
    had run out, ADMIN_STATE_REVOKED when it had not (RFC 8881 §18.46.3), and its stateids
    answer NFS4ERR_EXPIRED or NFS4ERR_ADMIN_REVOKED until it frees them."""
    c = find_client(svc, req.arg)
    expired = c.lease_expired(svc.lease_time)
    why = Revoked.EXPIRED if expired else Revoked.ADMIN
    n = svc.state.revoke_client(c.clientid, why,
                                because=f"the admin (uid {req.uid}) expired it with `securenfs expire`")
    log.warning("admin (uid %s) expired %s: %d stateid(s) revoked (%s)", req.uid, c.describe(), n, why.name)
    return {"ok": True, "client": f"{c.clientid:#018x}", "revoked": n, "as": why.name}
