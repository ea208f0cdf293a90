"""Fakes in the true formats, for the tests and the benchmarks: a Hub-compatible server and raw source collections."""
