"""The single-node coordinator: stable epochs while assigned, newer ones after a gap."""

from __future__ import annotations

from mailport.cluster.assignment import Want
from mailport.cluster.coordinator import LocalCoordinator

A, B = {"a": Want()}, {"b": Want()}


async def test_local_coordinator_gives_a_readded_connection_a_newer_epoch() -> None:
    coordinator = LocalCoordinator()
    first = await coordinator.assign("n", A | B)
    assert await coordinator.assign("n", A | B) == first  # stable while assigned
    await coordinator.assign("n", B)
    again = await coordinator.assign("n", A | B)
    assert again["b"] == first["b"]
    assert again["a"] > first["a"]
