"""The protocol's vocabulary: NFSv4.1 wire types generated from RFC 5662."""
