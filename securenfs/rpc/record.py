"""ONC RPC record marking over TCP (RFC 5531 §11): the fragment header and the cutting of
complete fragments out of a receive buffer, shared by the server's and the client's side."""

from __future__ import annotations

import struct

RM = struct.Struct(">I")
#: The last-fragment bit of a fragment header; the other 31 bits are the length.
LAST_FRAGMENT = 0x80000000
#: Fragments at least this large are handed over in the receive buffer itself instead of
#: being copied out of it.
HANDOVER_MIN = 64 * 1024


def cut_fragment(buf: bytearray, start: int, end: int) -> tuple[bytearray | memoryview, bytearray | None]:
    """The complete fragment ``buf[start:end]``, and the buffer to go on receiving into.

    A small fragment is copied out (the copy is owned by the record) and the second value
    is None: the caller keeps ``buf``.  A large one (a krb5p or WRITE body, READ data) that
    is most of the buffer is returned as a view of ``buf`` itself, and the bytes after it,
    fewer than the fragment's, move to a new buffer, returned second: the caller receives
    into that from now on and never touches ``buf`` again.  That saves a copy of the
    megabyte per record.
    """
    if end - start >= HANDOVER_MIN and len(buf) - end < end - start:
        return memoryview(buf)[start:end], bytearray(memoryview(buf)[end:])
    return buf[start:end], None
