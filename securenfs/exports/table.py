"""The export table and the pseudo file system above the exports (RFC 8881 §7).

Built once from the parsed ``[[exports]]`` (``securenfs.config.ExportConfig``) and immutable
afterwards; a reload builds a new table and swaps it in.  The pseudo file system is the tree
of directories that leads from the root ("/") to every export's pseudo path.  Its nodes are
read-only and exist only in memory; the node where a pseudo path ends is the export's
*junction*: LOOKUP of that name crosses into the export's own file system (new fsid).

Identifiers are derived from pseudo paths, so they are the same after a restart with the same
configuration:

* ``Export.export_id`` -- 32 bits of SHA-256 over the pseudo path; never 0 or 1.  It is part
  of every file handle of the export (see ``securenfs.vfs.handles``).
* ``PseudoNode.node_id`` -- likewise (root is 1, others are >= 3), used as the fileid and the
  handle of the node and as its READDIR cookie.

Two paths that hash to the same id are refused when the table is built (the message says to
rename one); with 32 bits this needs thousands of exports to become plausible.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from securenfs.config import ClientRule, ExportConfig
from securenfs.rpc.auth import FLAVORS

log = logging.getLogger("securenfs.exports")

ROOT_NODE_ID = 1
#: fsid of the pseudo file system; exports use (export_id, 0), and export ids are >= 2.
PSEUDO_FSID = (0, 0)


class ExportError(Exception):
    """The export configuration cannot be served; the message says which export and why."""


def _id32(kind: str, pseudo: str, low: int) -> int:
    h = int.from_bytes(hashlib.sha256(f"securenfs:{kind}:{pseudo}".encode()).digest()[:4], "big")
    return h if h >= low else h + low


@dataclass(slots=True, frozen=True, eq=False)
class Export:
    """One exported directory.  Compared and hashed by identity (one object per table)."""

    export_id: int
    path: Path
    pseudo: str
    flavors: tuple[str, ...]
    rules: tuple[ClientRule, ...]
    fsid: tuple[int, int]
    allow_devices: bool = False
    #: st_dev of the exported directory, fixed when the table was built.
    dev: int = 0

    def describe(self) -> str:
        return f"export {self.pseudo} ({self.path}, sec={','.join(self.flavors)})"


@dataclass(slots=True, eq=False)
class PseudoNode:
    node_id: int
    name: str
    path: str
    parent: PseudoNode | None
    children: dict[str, PseudoNode] = field(default_factory=dict)
    export: Export | None = None

    @property
    def is_junction(self) -> bool:
        return self.export is not None

    def walk(self) -> Iterator[PseudoNode]:
        yield self
        for c in self.children.values():
            yield from c.walk()

    def exports_below(self) -> Iterator[Export]:
        """Every export at or below this node."""
        for n in self.walk():
            if n.export is not None:
                yield n.export

    def sorted_children(self) -> list[PseudoNode]:
        """Children in READDIR order: by node id, which doubles as the cookie."""
        return sorted(self.children.values(), key=lambda n: n.node_id)


@dataclass(slots=True, frozen=True)
class Access:
    """What a client may do with an export (the first matching client rule)."""

    read_only: bool
    squash: str  # "none" | "root" | "all"
    anonuid: int
    anongid: int
    rule: str = "*"  # the rule's match text, for logs


Resolver = Callable[[str], list[str]]


def _reverse_names(ip: str) -> list[str]:
    primary, aliases, _ = socket.gethostbyaddr(ip)
    return [primary, *aliases]


def _forward_addresses(name: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)]


def resolve_peer_names(ip: str, *, reverse: Callable[[str], list[str]] = _reverse_names,
                       forward: Callable[[str], list[str]] = _forward_addresses) -> list[str]:
    """Host names of ``ip`` by reverse lookup, each confirmed by a forward lookup that gives
    ``ip`` back (otherwise anyone controlling their reverse zone could claim any name).
    ``reverse`` / ``forward`` are the two lookups (the system resolver by default); either
    raises OSError when it has no answer."""
    try:
        names = reverse(ip)
    except (OSError, UnicodeError):
        return []
    want = _normal_ip(ip)
    confirmed: list[str] = []
    for name in names:
        try:
            addrs = forward(name)
        except (OSError, UnicodeError):
            continue
        if any(_normal_ip(a) == want for a in addrs):
            confirmed.append(name.rstrip(".").lower())
    return confirmed


def _normal_ip(text: str) -> str:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class _NameCache:
    """peer ip -> confirmed names, with positive and negative expiry; thread-safe."""

    def __init__(self, resolver: Resolver, ttl: float, negative_ttl: float, max_entries: int = 4096):
        self._resolver, self._ttl, self._neg = resolver, ttl, negative_ttl
        self._max = max_entries
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, list[str]]] = {}

    def names(self, ip: str) -> list[str]:
        ip = _normal_ip(ip)
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(ip)
            if hit is not None and hit[0] > now:
                return hit[1]
        # Resolve outside the lock: DNS may be slow and other peers must not wait for it.
        names = self._resolver(ip)
        with self._lock:
            if len(self._data) >= self._max:
                self._data.pop(next(iter(self._data)))
            self._data[ip] = (now + (self._ttl if names else self._neg), names)
        return names


class ExportTable:
    """Exports and the pseudo tree; read-only after construction, so safe to share between
    threads and the event loop."""

    def __init__(self, exports: tuple[Export, ...], root: PseudoNode, *,
                 resolver: Resolver = resolve_peer_names, name_ttl: float = 300.0,
                 negative_ttl: float = 60.0):
        self.exports = exports
        self.root = root
        self._nodes = {n.node_id: n for n in root.walk()}
        self._by_id = {e.export_id: e for e in exports}
        self._junctions = {e.export_id: n for n in self._nodes.values() if (e := n.export) is not None}
        self._names = _NameCache(resolver, name_ttl, negative_ttl)

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def from_config(cls, exports: list[ExportConfig], *, resolver: Resolver = resolve_peer_names,
                    name_ttl: float = 300.0, negative_ttl: float = 60.0) -> ExportTable:
        built: list[Export] = []
        ids: dict[int, str] = {}
        for i, ec in enumerate(exports):
            where = f"exports[{i}] (pseudo {ec.pseudo!r}, path {str(ec.path)!r})"
            pseudo = _normal_pseudo(ec.pseudo, where)
            path = _check_dir(Path(ec.path), where)
            flavors = tuple(ec.sec)
            for f in flavors:
                if f not in FLAVORS:
                    raise ExportError(f"{where}: unknown security flavor {f!r} (use {', '.join(FLAVORS)})")
            if not flavors:
                raise ExportError(f"{where}: no security flavor allowed; list at least one in sec")
            if not ec.clients:
                raise ExportError(f"{where}: no client rule, so no client could use it; "
                                  'add [[exports.clients]] with match = "*" or a network')
            eid = _id32("export", pseudo, 2)
            if pseudo in ids.values():
                raise ExportError(f"{where}: pseudo path {pseudo!r} is used twice")
            if eid in ids:
                raise ExportError(f"{where}: its export id collides with the export at {ids[eid]!r}; "
                                  "change one of the two pseudo paths slightly")
            ids[eid] = pseudo
            built.append(Export(eid, path, pseudo, flavors, tuple(ec.clients), (eid, 0),
                                bool(ec.allow_devices), os.stat(path).st_dev))
        root = _build_tree(built)
        return cls(tuple(built), root, resolver=resolver, name_ttl=name_ttl, negative_ttl=negative_ttl)

    # -- queries ----------------------------------------------------------------------------

    def node(self, node_id: int) -> PseudoNode | None:
        return self._nodes.get(node_id)

    def by_id(self, export_id: int) -> Export | None:
        return self._by_id.get(export_id)

    def junction(self, export: Export) -> PseudoNode:
        """The pseudo node where ``export`` is mounted (its parent is where LOOKUPP from the
        export root goes; its node_id is the export root's mounted_on_fileid)."""
        return self._junctions[export.export_id]

    def lookup(self, node: PseudoNode, name: str) -> PseudoNode | None:
        return node.children.get(name)

    def access(self, export: Export, peer_ip: str) -> Access | None:
        """The first client rule of ``export`` that matches ``peer_ip``; None if none does
        (the client may not use the export at all).  Host-name rules may resolve DNS: call
        from a worker thread."""
        names: list[str] | None = None
        for rule in export.rules:
            hit = rule.matches_address(peer_ip)
            if hit is None:  # a host-name rule
                if names is None:
                    names = self._names.names(peer_ip)
                pattern = rule.match.rstrip(".").lower()
                hit = any(fnmatch.fnmatchcase(n, pattern) for n in names)
            if hit:
                return Access(rule.access == "ro", rule.squash, rule.anonuid, rule.anongid, rule.match)
        return None

    def readdir(self, node: PseudoNode, cookie: int, max_entries: int,
                peer_ip: str | None = None) -> tuple[list[PseudoNode], bool]:
        """READDIR of a pseudo directory: children after ``cookie`` (0 = from the start), at
        most ``max_entries``, and whether that is the end.  An entry's cookie is its
        ``node_id`` (never 0, 1 or 2), so cookies stay valid for the life of the table.  With
        ``peer_ip``, children the client cannot see (:meth:`visible`) are left out."""
        out: list[PseudoNode] = []
        children = node.sorted_children()
        for child in children:
            if child.node_id <= cookie:
                continue
            if peer_ip is not None and not self.visible(child, peer_ip):
                continue
            if len(out) == max_entries:
                return out, False
            out.append(child)
        return out, True

    def visible(self, node: PseudoNode, peer_ip: str) -> bool:
        """Whether ``peer_ip`` may see pseudo node ``node``: some export at or below it
        admits the client.  A pseudo directory leading only to exports the client cannot
        use is hidden from it (RFC 8881 §7.4 leaves this to the server)."""
        return any(self.access(e, peer_ip) is not None for e in node.exports_below())


def _normal_pseudo(p: str, where: str) -> str:
    if not p.startswith("/"):
        raise ExportError(f"{where}: the pseudo path must be absolute")
    parts = [c for c in p.split("/") if c]
    for c in parts:
        if c in (".", "..") or "\0" in c:
            raise ExportError(f"{where}: the pseudo path contains {c!r}")
        if len(c.encode()) > 255:
            raise ExportError(f"{where}: the pseudo path component {c[:20]!r}... is longer than 255 bytes")
    return "/" + "/".join(parts)


def _check_dir(path: Path, where: str) -> Path:
    if not path.is_absolute():
        raise ExportError(f"{where}: the path must be absolute")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ExportError(f"{where}: the directory does not exist (create it or fix the path)") from None
    except OSError as exc:
        raise ExportError(f"{where}: cannot examine the directory: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ExportError(f"{where}: the path is not a directory")
    # Resolve symlinks once here so the export is the directory the operator sees now.
    return Path(os.path.realpath(path))


def _build_tree(exports: list[Export]) -> PseudoNode:
    root = PseudoNode(ROOT_NODE_ID, "", "/", None)
    ids: dict[int, str] = {ROOT_NODE_ID: "/"}
    junctions: dict[str, Export] = {e.pseudo: e for e in exports}
    if "/" in junctions and len(exports) > 1:
        raise ExportError(
            "an export at pseudo path '/' must be the only export: the others would be hidden "
            "inside it (give it its own pseudo path, e.g. '/data')")
    for e in sorted(exports, key=lambda x: x.pseudo):
        node = root
        for comp in [c for c in e.pseudo.split("/") if c]:
            if node.export is not None:
                raise ExportError(f"export {e.pseudo!r} lies inside export {node.path!r}; "
                                  "exports cannot be nested in the pseudo file system")
            child = node.children.get(comp)
            if child is None:
                path = node.path.rstrip("/") + "/" + comp
                nid = _id32("node", path, 3)
                if nid in ids:
                    raise ExportError(f"pseudo path {path!r} collides with {ids[nid]!r}; rename one")
                ids[nid] = path
                child = PseudoNode(nid, comp, path, node)
                node.children[comp] = child
            node = child
        if node.children:
            raise ExportError(f"export {e.pseudo!r} has other exports below it; "
                              "exports cannot be nested in the pseudo file system")
        node.export = e
    return root
