"""NFSv4.1 (RFC 8881): the COMPOUND procedure and its operations."""
