"""Benchmark scenarios for SREs, each measured beside an anchor in the same run (to come)."""
