"""Root and all squashing: the client's claimed ids -> the ids file-system work runs as.

Applied before any file-system work (the NFSv4 layer calls :func:`apply_squash` with the
ids from AUTH_SYS or from the principal's mapping, then runs the operation inside
``securenfs.vfs.creds.as_caller``).

* ``none``: ids pass unchanged (root stays root: only for trusted admin hosts).
* ``root`` (the default): uid 0 becomes ``anonuid``, gid 0 becomes ``anongid``, and group 0
  among the supplementary groups becomes ``anongid`` (as knfsd's root_squash does).
* ``all``: every caller becomes ``anonuid``/``anongid`` with no supplementary groups.
"""

from __future__ import annotations

from collections.abc import Iterable

from securenfs.exports.table import Access
from securenfs.vfs.creds import FsCreds


def apply_squash(access: Access, uid: int, gid: int, groups: Iterable[int]) -> FsCreds:
    if access.squash == "all":
        return FsCreds(access.anonuid, access.anongid, ())
    gl = tuple(dict.fromkeys(groups))  # drop duplicates, keep order
    if access.squash == "root":
        if uid == 0:
            uid = access.anonuid
        if gid == 0:
            gid = access.anongid
        gl = tuple(dict.fromkeys(access.anongid if g == 0 else g for g in gl))
    elif access.squash != "none":
        raise ValueError(f"unknown squash mode {access.squash!r}")
    return FsCreds(uid, gid, gl)
