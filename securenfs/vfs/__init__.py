"""File-system access for the NFSv4 server: file handles, acting as the caller, and one
:class:`~securenfs.vfs.local.LocalFs` per export.  Import the submodules directly
(``securenfs.vfs.local``, ``.handles``, ``.creds``)."""
