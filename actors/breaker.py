"""A circuit breaker for one outbound connection.

Closed: work flows. After `threshold` connection failures in a row it opens: the connection
takes no work, so the others take it all. After a cool-down it lets one trial through
(half-open); success closes it, failure opens it again for twice as long, up to `longest`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Breaker:
    threshold: int = 3
    cool_down: float = 2.0
    longest: float = 60.0
    failures: int = 0
    opened_at: float | None = None
    wait: float = field(init=False)

    def __post_init__(self) -> None:
        self.wait = self.cool_down

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.wait else "open"

    def allows(self) -> bool:
        return self.state != "open"

    def succeeded(self) -> bool:
        """Record a success; True when that closed an open breaker."""
        was_open = self.opened_at is not None
        self.failures, self.opened_at, self.wait = 0, None, self.cool_down
        return was_open

    def failed(self) -> bool:
        """Record a connection failure; True when that opened the breaker."""
        self.failures += 1
        if self.opened_at is not None:  # the half-open trial failed
            self.wait = min(self.longest, self.wait * 2)
            self.opened_at = time.monotonic()
            return False
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()
            return True
        return False
