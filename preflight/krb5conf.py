"""A reader for krb5.conf (the MIT "profile" format, krb5.conf(5)).

Only what the checks need: sections, relations, one level of ``{ }`` subsections,
``include``/``includedir``, comments.  Parse errors carry the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

Value = str | dict[str, list[str]]


class Krb5ConfError(Exception):
    pass


@dataclass(slots=True)
class Krb5Conf:
    paths: list[str]
    sections: dict[str, dict[str, list[Value]]] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def libdefault(self, key: str) -> str | None:
        vals = self.sections.get("libdefaults", {}).get(key, [])
        for v in vals:
            if isinstance(v, str):
                return v
        # Per-realm overrides inside [libdefaults] are rare; ignore them.
        return None

    def bool_libdefault(self, key: str, default: bool) -> bool | str:
        v = self.libdefault(key)
        if v is None:
            return default
        low = v.strip().lower()
        if low in ("true", "yes", "on", "1", "y", "t"):
            return True
        if low in ("false", "no", "off", "0", "n", "f", "nil"):
            return False
        return low  # e.g. dns_canonicalize_hostname = fallback

    @property
    def default_realm(self) -> str:
        return self.libdefault("default_realm") or ""

    def realm(self, name: str) -> dict[str, list[str]]:
        for v in self.sections.get("realms", {}).get(name, []):
            if isinstance(v, dict):
                return v
        return {}

    def domain_realm(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, vals in self.sections.get("domain_realm", {}).items():
            for v in vals:
                if isinstance(v, str):
                    out[k.lower()] = v
        return out


def _parse_file(path: Path, conf: Krb5Conf, depth: int) -> None:
    if depth > 8:
        raise Krb5ConfError(f"{path}: include nesting too deep")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise Krb5ConfError(f"{path}: cannot read: {exc.strerror or exc}") from None
    conf.paths.append(str(path))
    section: dict[str, list[Value]] | None = None
    sub: dict[str, list[str]] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{path}:{lineno}"
        if sub is None and line.startswith(("include ", "includedir ")):
            kw, _, arg = line.partition(" ")
            target = Path(arg.strip())
            if kw == "include":
                _parse_file(target, conf, depth + 1)
            else:
                try:
                    names = sorted(os.listdir(target))
                except OSError as exc:
                    raise Krb5ConfError(f"{where}: includedir {target}: {exc.strerror}") from None
                for n in names:
                    # krb5.conf(5): only names of alphanumerics, dashes, underscores, or *.conf
                    if n.endswith(".conf") or all(c.isalnum() or c in "-_" for c in n):
                        _parse_file(target / n, conf, depth + 1)
            continue
        if line.startswith("["):
            if sub is not None:
                raise Krb5ConfError(f"{where}: section header inside an open {{ }} block")
            end = line.find("]")
            if end < 0:
                raise Krb5ConfError(f"{where}: unterminated section header {line!r}")
            section = conf.sections.setdefault(line[1:end].strip(), {})
            continue
        if line == "}" or line.startswith("}"):
            if sub is None:
                raise Krb5ConfError(f"{where}: '}}' without an open block")
            sub = None
            continue
        if "=" not in line:
            raise Krb5ConfError(f"{where}: expected 'name = value', got {line!r}")
        if section is None:
            raise Krb5ConfError(f"{where}: relation outside any [section]")
        key, _, value = line.partition("=")
        key = key.strip().rstrip("*").strip()
        value = value.strip()
        if sub is not None:
            if value == "{":
                raise Krb5ConfError(
                    f"{where}: nested blocks deeper than one level are not supported here"
                )
            sub.setdefault(key, []).append(value)
        elif value == "{":
            sub = {}
            section.setdefault(key, []).append(sub)
        else:
            section.setdefault(key, []).append(value)
    if sub is not None:
        raise Krb5ConfError(f"{path}: a {{ block is not closed at end of file")


def load_krb5_conf(path: str | os.PathLike[str]) -> Krb5Conf:
    """Parse krb5.conf; problems are recorded in ``.error`` rather than raised."""
    conf = Krb5Conf([])
    try:
        for part in str(path).split(":"):
            if part:
                _parse_file(Path(part), conf, 0)
    except Krb5ConfError as exc:
        conf.error = str(exc)
    return conf
