"""ONC RPC v2 (RFC 5531) over TCP: record marking, call headers, authentication, dispatch."""
