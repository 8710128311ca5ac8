"""Read-only administration interface: a JSON status over a Unix socket (`securenfs status`)."""
