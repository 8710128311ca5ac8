"""The protocol's shared vocabulary: NFSv4.1 numbers, status codes and their one exception.

Every layer may import from here; this package imports nothing else from securenfs, so the
state, locking, recovery, vfs and exports layers need nothing from :mod:`securenfs.nfs4`.
"""
