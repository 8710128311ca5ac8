"""Re-export of :mod:`securenfs.proto.constants`, where the NFSv4.1 numbers are declared."""

from securenfs.proto.constants import *  # noqa: F403
