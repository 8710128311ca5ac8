"""A small ONC RPC / NFSv4.1 client used by the tests, the benchmarks and the probe command."""
