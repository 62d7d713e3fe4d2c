"""The control plane's one interface, and its single-node implementation.

The etcd implementation (leases, election, watched assignments) sits behind the same calls."""

from __future__ import annotations

import time
from typing import Protocol


class Coordinator(Protocol):
    async def assign(self, node: str, connections: list[str]) -> dict[str, int]:
        """The connections this node should serve now, each with its fencing epoch."""
        ...


class LocalCoordinator:
    """One node serves everything. Each start takes a new, larger epoch, so anything left
    over from an earlier run of this node is fenced out of the store."""

    def __init__(self) -> None:
        self.epoch = time.time_ns() // 1_000_000

    async def assign(self, node: str, connections: list[str]) -> dict[str, int]:
        return {name: self.epoch for name in connections}
