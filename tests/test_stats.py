"""The counters `mailport status` shows."""

from __future__ import annotations

import ray

from mailport.actors.stats import Event, StatsAggregator


async def test_each_message_counts_once(ray_session: None) -> None:
    stats = StatsAggregator.remote()  # type: ignore[attr-defined]
    events = [
        Event("in", "mx", "app", "<a@x>", "handled", None),
        Event("out", "relay", "app", "<b@x>", "sent", None),
        Event("out", "relay", "app", "<c@x>", "failed", "550 5.1.1 no such user"),
        Event("out", "relay", "app", "<d@x>", "deferred", "451 later"),
    ]
    await stats.record.remote(events)
    table = await stats.snapshot.remote()
    assert table["relay"] == {"in": 0, "out": 1, "failed": 1, "sent": 1, "deferred": 1}
    assert table["mx"] == {"in": 1, "out": 0, "failed": 0, "handled": 1}
    ray.kill(stats)
