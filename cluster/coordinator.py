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
    """One node serves everything. Each assignment takes a new, larger epoch (milliseconds
    since the epoch, or one more than the last): anything left over from an earlier run, or
    from before a connection was removed and added again, is fenced out of the store."""

    def __init__(self) -> None:
        self.assigned: dict[str, int] = {}
        self.last = 0

    async def assign(self, node: str, connections: list[str]) -> dict[str, int]:
        self.assigned = {name: self.assigned.get(name) or self._next() for name in connections}
        return dict(self.assigned)

    def _next(self) -> int:
        self.last = max(time.time_ns() // 1_000_000, self.last + 1)
        return self.last
