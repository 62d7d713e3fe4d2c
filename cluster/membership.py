"""Cluster membership: each live node holds a key under its lease; lease gone, node gone."""

from __future__ import annotations

import json
from typing import Any

from mailport.cluster.assignment import Member


def key(prefix: str, node: str) -> bytes:
    return f"{prefix}/members/{node}".encode()


async def join(etcd: Any, prefix: str, node: str, member: Member, lease_id: int) -> None:
    value = json.dumps({"capacity": member.capacity, "zone": member.zone})
    await etcd.put(key(prefix, node), value.encode(), lease=lease_id)


async def members(etcd: Any, prefix: str) -> dict[str, Member]:
    """The live nodes, by name."""
    found: dict[str, Member] = {}
    start = key(prefix, "")
    for kv in await etcd.get_prefix(start):
        data = json.loads(kv.value)
        found[kv.key[len(start) :].decode()] = Member(data.get("capacity"), data.get("zone"))
    return found
