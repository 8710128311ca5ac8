"""The protocol every backend implements."""

from __future__ import annotations

from typing import Protocol

from idmap.records import GroupRec, UserRec


class Backend(Protocol):
    """A source of users and groups, asked in the configured order.

    Methods block; the mapper calls them from worker threads.  ``None`` means the backend
    answered and does not know the name; :class:`~idmap.errors.BackendUnavailable` means
    it could not answer.
    """

    name: str

    def user_by_name(self, name: str) -> UserRec | None: ...

    def user_by_uid(self, uid: int) -> UserRec | None: ...

    def user_by_principal(self, principal: str, shortname: str | None) -> UserRec | None:
        """``shortname`` is the principal's name part when its realm is a local realm."""
        ...

    def group_by_name(self, name: str) -> GroupRec | None: ...

    def group_by_gid(self, gid: int) -> GroupRec | None: ...

    def groups_of(self, user: UserRec) -> tuple[int, ...]:
        """Supplementary gids of ``user`` (may include its primary gid)."""
        ...

    def status(self) -> dict[str, object]:
        """State for the CLI and metrics (online, current server, ...)."""
        ...

    def close(self) -> None: ...
