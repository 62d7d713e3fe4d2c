"""Leader election over one key: whoever creates it (create revision 0, under a lease)
leads until that lease ends. Writes the leader makes are guarded by the key's value, so a
leader that lost its lease can no longer write."""

from __future__ import annotations

from typing import Any


def key(prefix: str) -> bytes:
    return f"{prefix}/leader".encode()


def candidate(node: str, lease_id: int) -> bytes:
    """The value a candidate writes: the node and its lease, unique to this tenure."""
    return f"{node}@{lease_id:x}".encode()


async def campaign(etcd: Any, prefix: str, node: str, lease_id: int) -> bool:
    """Try to become leader without waiting; True when this node leads."""
    me = candidate(node, lease_id)
    ops = etcd.transactions
    won, _ = await etcd.transaction(
        compare=[ops.create(key(prefix)) == 0],
        success=[ops.put(key(prefix), me, lease=lease_id)],
        failure=[],
    )
    if won:
        return True
    return await leader(etcd, prefix) == me


async def leader(etcd: Any, prefix: str) -> bytes | None:
    """The leader's candidate value, or None while nobody leads."""
    found = await etcd.get(key(prefix))
    return None if found is None else bytes(found.value)


def leading(etcd: Any, prefix: str, node: str, lease_id: int) -> Any:
    """A transaction comparison that holds only while this tenure leads."""
    return etcd.transactions.value(key(prefix)) == candidate(node, lease_id)
