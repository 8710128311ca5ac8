"""Re-export of :mod:`securenfs.proto.errors`, where Nfs4Error and the errno mapping live."""

from securenfs.proto.errors import Nfs4Error, status_from_errno

__all__ = ["Nfs4Error", "status_from_errno"]
