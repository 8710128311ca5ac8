"""The stable record kept for each confirmed client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class ClientRecord:
    """What survives a restart about one client (RFC 8881 §8.4.2.1: enough to tell whether
    a reclaiming client held state before the restart).

    ``epoch`` is the boot epoch under which the record was last written; ``node`` is the
    cluster node that confirmed it (empty for a single server).
    """

    owner_id: bytes
    principal: str | None
    recorded_at: float
    epoch: int
    node: str = ""


def owner_label(owner_id: bytes, limit: int = 64) -> str:
    """A client owner id as people can read it: the text when it is printable ASCII (Linux
    sends "Linux NFSv4.1 host.example.com"), hex otherwise."""
    raw = owner_id[:limit]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        return text + ("..." if len(owner_id) > limit else "")
    return "0x" + raw.hex() + ("..." if len(owner_id) > limit else "")
