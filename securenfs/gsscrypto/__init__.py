"""RFC 4121 per-message tokens on OpenSSL: the krb5i/krb5p fast path.

Contexts are established with python-gssapi (MIT krb5); for the AES enctypes the MIC and
Wrap tokens are then computed here with the ``cryptography`` package and OpenSSL's HMAC,
which use AES-NI, instead of Debian's libk5crypto, which does not.  Other contexts keep
using gss_wrap/gss_get_mic: :meth:`FastContext.from_gss` returns None for them.
"""

from securenfs.gsscrypto.enctypes import Enctype
from securenfs.gsscrypto.errors import BadChecksum, BadToken
from securenfs.gsscrypto.keysource import FastPathChoice, choose_fast_path, session_enctype
from securenfs.gsscrypto.malloctune import MallocTuning, tune_malloc_for_large_buffers
from securenfs.gsscrypto.tokens import FastContext, KeyUsage, TokenFlags

__all__ = [
    "BadChecksum",
    "BadToken",
    "Enctype",
    "FastContext",
    "FastPathChoice",
    "KeyUsage",
    "MallocTuning",
    "TokenFlags",
    "choose_fast_path",
    "session_enctype",
    "tune_malloc_for_large_buffers",
]
