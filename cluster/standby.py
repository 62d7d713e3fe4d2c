"""Warm inbound actors a node keeps ready, so a connection it takes over starts in one call.

A new Ray actor is a new process that must import mailport before it can work: 1-2 s here,
more on a loaded machine. A failover waits for that after the lease has run out, so each
clustered node keeps a few standbys started ahead of time, and replaces each one it uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray


class Standbys:
    """Up to `size` started actors that serve nothing yet, made by `make(serial)`."""

    def __init__(self, size: int, make: Callable[[int], Any]) -> None:
        self.size = size
        self._make = make
        self._ready: list[Any] = []
        self._made = 0

    def take(self) -> Any | None:
        """A standby for a connection to start on, or None when none is left."""
        return self._ready.pop(0) if self._ready else None

    def refill(self) -> None:
        """Start standbys until there are `size` again (returns at once: they start in the
        background)."""
        while len(self._ready) < self.size:
            self._made += 1
            self._ready.append(self._make(self._made))

    def __len__(self) -> int:
        return len(self._ready)

    def close(self) -> None:
        for actor in self._ready:
            ray.kill(actor)
        self._ready.clear()
