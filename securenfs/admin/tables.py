"""Text views for people: aligned tables and indented key/value lines, never Python reprs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def text(v: Any) -> str:
    """One value as a person reads it."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(text(x) for x in v) if v else "-"
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {text(x)}" for k, x in v.items()) if v else "-"
    return str(v)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> list[str]:
    """Left-aligned columns, the header first."""
    cells = [[text(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return (indent + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))).rstrip()

    return [line(headers), *(line(r) for r in cells)]


def tree(value: Any, indent: str = "  ") -> list[str]:
    """Nested dicts as indented ``key: value`` lines; lists of dicts as tables."""
    out: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(v, Mapping) and v and any(isinstance(x, (Mapping, list)) for x in v.values()):
                out.append(f"{indent}{k}:")
                out += tree(v, indent + "  ")
            elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
                out.append(f"{indent}{k}:")
                out += tree(v, indent + "  ")
            else:
                out.append(f"{indent}{k}: {text(v)}")
    elif isinstance(value, list) and value and all(isinstance(x, Mapping) for x in value):
        headers = list(dict.fromkeys(k for x in value for k in x))
        out += table(headers, [[x.get(h) for h in headers] for x in value], indent)
    else:
        out.append(f"{indent}{text(value)}")
    return out


CLIENT_COLUMNS = (("id", "ID"), ("owner", "OWNER"), ("principal", "PRINCIPAL"), ("address", "ADDRESS"),
                  ("lease_left", "LEASE LEFT"), ("sessions", "SESSIONS"), ("opens", "OPENS"),
                  ("locks", "LOCKS"), ("courtesy", "COURTESY"), ("revoked", "REVOKED"))


def render_clients(clients: Sequence[Mapping[str, Any]]) -> str:
    if not clients:
        return "no clients\n"
    rows = [[_short(c.get(k), 40) for k, _ in CLIENT_COLUMNS] for c in clients]
    return "\n".join(table([h for _, h in CLIENT_COLUMNS], rows)) + "\n"


def _short(v: Any, n: int) -> Any:
    if isinstance(v, str) and len(v) > n:
        return v[: n - 3] + "..."
    return v


def _state_what(s: Mapping[str, Any]) -> str:
    if s.get("kind") == "open":
        return f"access {s.get('access')}, deny {s.get('deny')}"
    ranges = s.get("ranges") or []
    return "; ".join(f"{r['type']} {r['offset']}+{r['length']}" for r in ranges) or "no ranges"


def render_client(answer: Mapping[str, Any]) -> str:
    c = answer.get("client") or {}
    lines = [f"client {c.get('id')}"]
    lines += tree({k: v for k, v in c.items() if k != "id"})
    states = answer.get("states") or []
    if not states:
        lines.append("no opens or locks")
    else:
        rows = [[s.get("kind"), s.get("export"), s.get("path") or "?", s.get("owner"), _state_what(s),
                 s.get("revoked") or "", s.get("stateid")] for s in states]
        lines += table(["STATE", "EXPORT", "PATH", "OWNER", "HOLDS", "REVOKED", "STATEID"], rows)
    return "\n".join(lines) + "\n"


def render_locks(answer: Mapping[str, Any]) -> str:
    holders = answer.get("holders") or []
    head = f"{answer.get('path')} (export {answer.get('export')})"
    if not holders:
        return f"{head}: no opens or locks\n"
    rows = [[h.get("client"), h.get("principal"), h.get("address"), h.get("kind"), h.get("owner"),
             _state_what(h)] for h in holders]
    return "\n".join([head, *table(["CLIENT", "PRINCIPAL", "ADDRESS", "STATE", "OWNER", "HOLDS"], rows)]) + "\n"
