"""StatsAggregator: live counters from every actor, and the recent-events feed for the CLI."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

import ray


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to one message."""

    direction: str  # in | out
    connection: str
    application: str | None
    message_id: str | None
    status: str  # handled | unanswerable | quarantined | sent | deferred | failed | error
    detail: str | None = None

    def line(self) -> str:
        parts = [
            self.direction,
            self.connection,
            self.application or "-",
            self.message_id or "(no Message-ID)",
            self.status,
        ]
        return " ".join(parts) + (f": {self.detail}" if self.detail else "")


# How the per-connection summary counts a message's status: "in" is every inbound message
# processed (answered or not), "out" every message delivered, "failed" what needs a person.
IN = {"handled", "unanswerable"}
OUT = {"sent"}
FAILED = {"quarantined", "failed"}
_TOTALS = {"in", "out", "failed"}


# A sliver of CPU, not none: Ray ignores node affinity for actors that take no CPU.
@ray.remote(num_cpus=0.01, max_restarts=-1)
class StatsAggregator:
    def __init__(self, keep: int = 10_000) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.events: deque[tuple[int, Event]] = deque(maxlen=keep)
        self.seq = 0

    def record(self, events: list[Event]) -> None:
        for event in events:
            self.seq += 1
            self.events.append((self.seq, event))
            self.counts[(event.connection, "in")] += event.status in IN
            self.counts[(event.connection, "out")] += event.status in OUT
            self.counts[(event.connection, "failed")] += event.status in FAILED
            if event.status not in _TOTALS:  # "failed" is a status and a total: count it once
                self.counts[(event.connection, event.status)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for (connection, metric), n in self.counts.items():
            table.setdefault(connection, {"in": 0, "out": 0, "failed": 0})[metric] = n
        return table

    def tail(self, after: int) -> tuple[int, list[dict[str, Any]]]:
        return self.seq, [asdict(e) for s, e in self.events if s > after]
