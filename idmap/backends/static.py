"""The static backend: a small text file of names and ids, for small sites and tests.

Format, one entry per line, ``#`` starts a comment::

    user      alice   1000  1000          # name uid primary-gid
    group     staff   5000  alice bob     # name gid [member names...]
    principal alice/admin@EXAMPLE.COM  alice   # principal -> user name

Principals of a local realm map by their short name without a ``principal`` line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from idmap.names import MAX_ID
from idmap.records import GroupRec, UserRec

log = logging.getLogger("idmap.static")


class StaticFileError(ValueError):
    """A line of the static file is malformed; the message names the file and line."""


@dataclass(slots=True)
class _Tables:
    users: dict[str, UserRec] = field(default_factory=dict)
    by_uid: dict[int, UserRec] = field(default_factory=dict)
    groups: dict[str, GroupRec] = field(default_factory=dict)
    by_gid: dict[int, GroupRec] = field(default_factory=dict)
    members: dict[str, set[int]] = field(default_factory=dict)
    principals: dict[str, str] = field(default_factory=dict)


def _id(text: str, path: str, lineno: int) -> int:
    if not text.isdigit() or int(text) > MAX_ID:
        raise StaticFileError(f"{path}:{lineno}: {text!r} is not an id (0..{MAX_ID})")
    return int(text)


def parse_static(text: str, path: str = "<static>") -> _Tables:
    t = _Tables()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        kind = fields[0].lower()
        if kind == "user" and len(fields) == 4:
            rec = UserRec(fields[1], _id(fields[2], path, lineno), _id(fields[3], path, lineno))
            if rec.name in t.users:
                raise StaticFileError(f"{path}:{lineno}: user {rec.name!r} defined twice")
            t.users[rec.name] = rec
            t.by_uid.setdefault(rec.uid, rec)  # first name wins for uid -> name
        elif kind == "group" and len(fields) >= 3:
            grp = GroupRec(fields[1], _id(fields[2], path, lineno))
            if grp.name in t.groups:
                raise StaticFileError(f"{path}:{lineno}: group {grp.name!r} defined twice")
            t.groups[grp.name] = grp
            t.by_gid.setdefault(grp.gid, grp)
            for member in fields[3:]:
                t.members.setdefault(member, set()).add(grp.gid)
        elif kind == "principal" and len(fields) == 3:
            t.principals[fields[1]] = fields[2]
        else:
            raise StaticFileError(
                f"{path}:{lineno}: expected 'user NAME UID GID', 'group NAME GID [MEMBERS]' "
                f"or 'principal PRINCIPAL USER', got {raw.strip()!r}"
            )
    for principal, user in t.principals.items():
        if user not in t.users:
            raise StaticFileError(f"{path}: principal {principal!r} maps to unknown user {user!r}")
    return t


class StaticBackend:
    name = "static"

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise StaticFileError(f"{path}: cannot read: {exc.strerror}") from None
        self._t = parse_static(text, path)

    def user_by_name(self, name: str) -> UserRec | None:
        return self._t.users.get(name)

    def user_by_uid(self, uid: int) -> UserRec | None:
        return self._t.by_uid.get(uid)

    def user_by_principal(self, principal: str, shortname: str | None) -> UserRec | None:
        mapped = self._t.principals.get(principal)
        if mapped is not None:
            return self._t.users[mapped]
        return self._t.users.get(shortname) if shortname is not None else None

    def group_by_name(self, name: str) -> GroupRec | None:
        return self._t.groups.get(name)

    def group_by_gid(self, gid: int) -> GroupRec | None:
        return self._t.by_gid.get(gid)

    def groups_of(self, user: UserRec) -> tuple[int, ...]:
        return tuple(sorted(self._t.members.get(user.name, set()) | {user.gid}))

    def status(self) -> dict[str, object]:
        return {"online": True, "file": self.path, "users": len(self._t.users),
                "groups": len(self._t.groups)}

    def close(self) -> None:
        pass
