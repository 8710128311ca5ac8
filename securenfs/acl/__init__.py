"""NFSv4 ACLs (RFC 8881 §6) stored as POSIX ACLs: the vocabulary of both sides and the mapping.

Pure: no I/O, no protocol layer.  :mod:`.ace` holds the NFSv4 ACE constants and the resolved
ACE record, :mod:`.posix` the POSIX ACL entries and their ``system.posix_acl_*`` xattr format,
:mod:`.mapping` the translation both ways (the one the Linux NFS server uses, with every ACL
it would silently weaken refused instead).
"""
