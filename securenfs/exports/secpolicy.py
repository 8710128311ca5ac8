"""The one security policy: which flavors reach which object (RFC 8881 §2.6.3.1).

:class:`SecPolicy` answers two questions from the same function, :meth:`SecPolicy.flavors`,
so they can never disagree (a SECINFO that advertises a flavor the server then refuses makes
clients loop WRONGSEC -> SECINFO -> WRONGSEC forever):

* ``allows(target, pseudo_flavor)`` -- the WRONGSEC decision for the current file handle;
* ``secinfo(target)`` -- the SECINFO / SECINFO_NO_NAME answer, in preference order.

``target`` is an :class:`Export` (any file handle inside it) or a :class:`PseudoNode`.
A pseudo node allows the union of the flavors of every export below it, so a client that
can use some export can always walk the pseudo file system down to it (a sec=sys pseudo
root above a krb5-only export is a classic mount failure).  Pseudo nodes are read-only and
only reveal names, so the union exposes nothing an export protects.

When the server cannot serve some flavor at all (no keytab: no Kerberos), pass
``available``: those flavors are then neither advertised nor accepted anywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from securenfs.exports.table import Export, ExportTable, PseudoNode
from securenfs.rpc.auth import FLAVORS, PSEUDO_FLAVORS, flavor_name
from securenfs.rpc.constants import AuthFlavor
from securenfs.rpcsec_gss.flavors import triple_for_name

#: Preference order of the union at pseudo nodes: strongest first.
_RANK = {name: i for i, name in enumerate(FLAVORS)}


@dataclass(slots=True, frozen=True)
class SecInfo:
    """One entry of a SECINFO answer (RFC 8881 §18.29.2 secinfo4).

    ``flavor`` is the RPC flavor on the wire: 6 (RPCSEC_GSS) with ``oid``/``qop``/``service``
    set, or 1 (AUTH_SYS) with them None.  ``name`` is the configuration name.
    """

    name: str
    flavor: int
    oid: bytes | None = None
    qop: int | None = None
    service: int | None = None


def secinfo_entry(name: str) -> SecInfo:
    if name == "sys":
        return SecInfo(name, int(AuthFlavor.AUTH_SYS))
    t = triple_for_name(name)
    return SecInfo(name, int(AuthFlavor.RPCSEC_GSS), t.oid, t.qop, int(t.service))


class SecPolicy:
    """Immutable view of one :class:`ExportTable`; thread-safe.  To change the policy of a
    running server, build a new one and swap the reference."""

    def __init__(self, table: ExportTable, available: Collection[str] | None = None,
                 overrides: Mapping[str, Collection[str]] | None = None,
                 reasons: Mapping[str, Sequence[str]] | None = None):
        """``overrides`` narrows some exports (by pseudo path) to fewer flavors, e.g. the
        preflight gate holding back Kerberos flavors whose checks failed; an empty
        collection switches that export off.  ``reasons`` (pseudo path -> lines) says why,
        for :meth:`explain`."""
        self.table = table
        self._reasons = {p: tuple(r) for p, r in (reasons or {}).items() if r}
        self._available = frozenset(FLAVORS if available is None else available)
        unknown = self._available - set(FLAVORS)
        if unknown:
            raise ValueError(f"unknown flavors {sorted(unknown)}")
        overrides = overrides or {}
        # Precompute per export and per node: the answers are asked for on every op.
        self._by_export = {
            e.export_id: self._filter(tuple(f for f in e.flavors if f in overrides[e.pseudo])
                                      if e.pseudo in overrides else e.flavors)
            for e in table.exports
        }
        self._by_node: dict[int, tuple[str, ...]] = {}
        for node in table.root.walk():
            self._by_node[node.node_id] = self._node_flavors(node)

    def _filter(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if n in self._available)

    def _node_flavors(self, node: PseudoNode) -> tuple[str, ...]:
        if node.export is not None:
            return self._by_export[node.export.export_id]
        names = {f for e in node.exports_below() for f in self._by_export[e.export_id]}
        if not names and not self.table.exports:
            # No exports at all: the empty root hides nothing, so let any usable flavor
            # see it (mounting then shows an empty directory rather than a WRONGSEC loop).
            names = set(self._available)
        return tuple(sorted(names, key=_RANK.__getitem__))

    def flavors(self, target: PseudoNode | Export) -> tuple[str, ...]:
        """Allowed flavor names for ``target``, in the order SECINFO lists them."""
        if isinstance(target, Export):
            return self._by_export.get(target.export_id, ())
        return self._by_node.get(target.node_id, ())

    def allows(self, target: PseudoNode | Export, pseudo_flavor: int) -> bool:
        """Whether a request made with ``pseudo_flavor`` (1 sys, 390003 krb5, 390004 krb5i,
        390005 krb5p; see ``securenfs.rpc.auth.PSEUDO_FLAVORS``) may use ``target``."""
        name = flavor_name(pseudo_flavor)
        return name in self.flavors(target)

    def secinfo(self, target: PseudoNode | Export) -> tuple[SecInfo, ...]:
        """The SECINFO answer for ``target``: exactly the allowed flavors, same order."""
        return tuple(secinfo_entry(n) for n in self.flavors(target))

    def explain(self, target: PseudoNode | Export, pseudo_flavor: int) -> str:
        """One line for the log when :meth:`allows` said no."""
        what = target.describe() if isinstance(target, Export) else f"pseudo directory {target.path}"
        allowed = ", ".join(self.flavors(target)) or "nothing"
        line = (f"{what} refused security flavor {flavor_name(pseudo_flavor)}; it allows {allowed} "
                "(the client should follow SECINFO and remount with one of these)")
        exports = [target] if isinstance(target, Export) else list(target.exports_below())
        why = dict.fromkeys(r for e in exports for r in self._reasons.get(e.pseudo, ()))
        return line + ("; held back by the preflight: " + "; ".join(why) if why else "")


assert set(FLAVORS) <= set(PSEUDO_FLAVORS), "every configurable flavor has a wire number"
