"""Which configuration changes a running server applies on reload (SIGHUP, ``securenfs reload``).

Live: ``[[exports]]`` (added, removed, paths, flavors, client rules, squash) and the
``[preflight]`` checks' settings.  Everything else is bound to what the server built at start
(listening sockets, the state directory and its identity, the acceptor, client records,
the ID mapper, lease and grace times): a change there is named in a warning and takes effect
at the next start, while the live part of the reload still applies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from securenfs.config import Config, ExportConfig

#: Sections whose every key needs a restart.
RESTART_SECTIONS = ("server", "kerberos", "recovery")
#: [preflight] keys that choose how the gate runs (fixed at start, like --strict).
RESTART_PREFLIGHT_KEYS = ("enabled", "strict")


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def merge(running: Config, new: Config) -> tuple[Config, list[str]]:
    """The configuration to serve after a reload to ``new``, and one warning per changed key
    that cannot change live (``running``'s value is kept for those)."""
    warnings: list[str] = []
    for section in RESTART_SECTIONS:
        old_values, new_values = _fields(getattr(running, section)), _fields(getattr(new, section))
        for key, value in new_values.items():
            if old_values[key] != value:
                warnings.append(f"{section}.{key} changed; it takes effect only after a restart")
    if running.idmap_raw != new.idmap_raw:
        warnings.append("[idmap] changed; it takes effect only after a restart")
    keep = {k: getattr(running.preflight, k) for k in RESTART_PREFLIGHT_KEYS}
    for key, value in keep.items():
        if getattr(new.preflight, key) != value:
            warnings.append(f"preflight.{key} changed; it takes effect only after a restart")
    preflight = dataclasses.replace(new.preflight, **keep)
    merged = dataclasses.replace(running, exports=list(new.exports), preflight=preflight, source=new.source,
                                 warnings=list(new.warnings))
    return merged, warnings


def export_changes(running: list[ExportConfig], new: list[ExportConfig]) -> dict[str, list[str]]:
    """Pseudo paths added, removed and changed (path, flavors, client rules, devices)."""
    old = {e.pseudo: e for e in running}
    now = {e.pseudo: e for e in new}
    return {"added": [p for p in now if p not in old],
            "removed": [p for p in old if p not in now],
            "changed": [p for p in now if p in old and now[p] != old[p]]}
