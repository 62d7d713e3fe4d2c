"""Send events to the StatsAggregator in batches, off the hot path, never failing the caller."""

from __future__ import annotations

import asyncio
import logging

import ray

from mailport.actors.stats import Event

log = logging.getLogger(__name__)
STATS_ACTOR = "stats"


class EventSink:
    def __init__(self, interval: float = 0.1) -> None:
        self._buffer: list[Event] = []
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def emit(self, event: Event) -> None:
        self._buffer.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._interval)
        batch, self._buffer = self._buffer, []
        try:
            ray.get_actor(STATS_ACTOR).record.remote(batch)
        except Exception as exc:  # statistics must never stop mail
            log.warning("dropping %d statistics events: %s", len(batch), exc)
