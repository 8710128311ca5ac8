"""XDR (RFC 4506) encoding and decoding over memoryview with precompiled structs."""

from securenfs.xdr.codec import Packer, Unpacker, XdrError

__all__ = ["Packer", "Unpacker", "XdrError"]
