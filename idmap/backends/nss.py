"""The nsswitch backend: the host's passwd and group databases (files, SSSD, winbind).

This is the right choice on SSSD/winbind hosts: the ids are then the same as the clients
see, including algorithmic AD id mapping that has no uidNumber to look up.
"""

from __future__ import annotations

import grp
import os
import pwd

from idmap.records import GroupRec, UserRec


class NssBackend:
    name = "nss"

    def user_by_name(self, name: str) -> UserRec | None:
        try:
            pw = pwd.getpwnam(name)
        except (KeyError, ValueError):  # ValueError: embedded NUL
            return None
        return UserRec(pw.pw_name, pw.pw_uid, pw.pw_gid)

    def user_by_uid(self, uid: int) -> UserRec | None:
        try:
            pw = pwd.getpwuid(uid)
        except (KeyError, OverflowError):
            return None
        return UserRec(pw.pw_name, pw.pw_uid, pw.pw_gid)

    def user_by_principal(self, principal: str, shortname: str | None) -> UserRec | None:
        # NSS knows no principals; like libnfsidmap's nsswitch method, only the short name
        # of a principal from a local realm is looked up.
        return self.user_by_name(shortname) if shortname is not None else None

    def group_by_name(self, name: str) -> GroupRec | None:
        try:
            gr = grp.getgrnam(name)
        except (KeyError, ValueError):
            return None
        return GroupRec(gr.gr_name, gr.gr_gid)

    def group_by_gid(self, gid: int) -> GroupRec | None:
        try:
            gr = grp.getgrgid(gid)
        except (KeyError, OverflowError):
            return None
        return GroupRec(gr.gr_name, gr.gr_gid)

    def groups_of(self, user: UserRec) -> tuple[int, ...]:
        return tuple(sorted(set(os.getgrouplist(user.name, user.gid))))

    def status(self) -> dict[str, object]:
        return {"online": True}

    def close(self) -> None:
        pass
