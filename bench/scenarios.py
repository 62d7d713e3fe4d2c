"""Every scenario, registered by importing its module."""

from mailport.bench import parse  # noqa: F401  (registers "parse")
from mailport.bench.harness import SCENARIOS

__all__ = ["SCENARIOS"]
