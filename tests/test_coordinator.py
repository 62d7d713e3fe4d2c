"""The single-node coordinator: stable epochs while assigned, newer ones after a gap."""

from __future__ import annotations

from mailport.cluster.coordinator import LocalCoordinator


async def test_local_coordinator_gives_a_readded_connection_a_newer_epoch() -> None:
    coordinator = LocalCoordinator()
    first = await coordinator.assign("n", ["a", "b"])
    assert await coordinator.assign("n", ["a", "b"]) == first  # stable while assigned
    await coordinator.assign("n", ["b"])
    again = await coordinator.assign("n", ["a", "b"])
    assert again["b"] == first["b"]
    assert again["a"] > first["a"]
