"""The protocol's shared vocabulary: NFSv4.1 numbers, status codes and their one exception,
and the wire types generated from RFC 5662 (:mod:`securenfs.proto.xdr41`).

Every layer may import from here; this package imports nothing from securenfs but the XDR
codec, so the state, locking, recovery, vfs and exports layers need nothing from
:mod:`securenfs.nfs4`.
"""
