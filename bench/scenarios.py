"""Every scenario, registered by importing its module."""

from mailport.bench import failover, outbound, parse, receipts  # noqa: F401  (registers them)
from mailport.bench.harness import SCENARIOS

__all__ = ["SCENARIOS"]
