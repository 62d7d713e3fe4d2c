"""The control plane's one interface, with a single-node and an etcd implementation.

A node asks `assign` in its reconcile loop which inbound connections it should serve now,
each with the fencing epoch its claims carry. With etcd, the leader computes the assignment
for every live member (`mailport.cluster.assignment`) and writes it; every node reads its
own part."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from mailport.cluster import election, membership, shared_config
from mailport.cluster.assignment import Member, Owner, Want, assign
from mailport.cluster.etcd import client
from mailport.cluster.lease import Lease
from mailport.config.models import Settings

log = logging.getLogger(__name__)


class CoordinatorUnavailable(Exception):
    """This node cannot prove that it owns anything: it must stop claiming mail."""


class Coordinator(Protocol):
    async def assign(self, node: str, connections: Mapping[str, Want]) -> dict[str, int]:
        """The connections this node should serve now, each with its fencing epoch."""
        ...

    async def hold(self, names: set[str]) -> set[str]:
        """Declare the inbound connections this node runs now; returns those it may run.
        One another node still runs is not free until that node has let it go (or died):
        a planned move waits for the old owner to settle its last batch."""
        ...

    async def view(self) -> dict[str, Any]:
        """Members, leader and the whole assignment, for `mailport status`."""
        ...

    async def settings(self, local: Settings) -> tuple[Settings, int]:
        """The settings to run with: `local` with the cluster's shared part in place, and
        that part's revision (a new cluster takes this node's)."""
        ...

    def settings_changes(self, local: Settings, after: int) -> AsyncIterator[tuple[Any, int]]:
        """Each later version of the shared settings, merged into `local` (or the error
        that makes it unusable), with its revision."""
        ...

    async def close(self) -> None: ...


def _next_epoch(last: int) -> int:
    """Milliseconds since the epoch, or one more than the last: larger than any epoch an
    earlier run gave, on either coordinator, so leftovers are fenced out of the store."""
    return max(time.time_ns() // 1_000_000, last + 1)


class LocalCoordinator:
    """One node serves everything. Each assignment takes a new, larger epoch: anything left
    over from an earlier run, or from before a connection was removed and added again, is
    fenced out of the store."""

    def __init__(self) -> None:
        self.assigned: dict[str, int] = {}
        self.last = 0
        self.node = ""

    async def assign(self, node: str, connections: Mapping[str, Want]) -> dict[str, int]:
        self.node = node
        self.assigned = {name: self.assigned.get(name) or self._next() for name in connections}
        return dict(self.assigned)

    def _next(self) -> int:
        self.last = _next_epoch(self.last)
        return self.last

    async def hold(self, names: set[str]) -> set[str]:
        return names

    async def view(self) -> dict[str, Any]:
        return {
            "coordinator": "local",
            "leader": self.node,
            "members": [self.node],
            "assignment": {c: {"node": self.node, "epoch": e} for c, e in self.assigned.items()},
        }

    async def settings(self, local: Settings) -> tuple[Settings, int]:
        return local, 0

    async def settings_changes(self, local: Settings, after: int) -> AsyncIterator[tuple[Any, int]]:
        return
        yield  # one node: its settings file is the whole story

    async def close(self) -> None:
        return None


class EtcdCoordinator:
    """Membership, election and assignment in etcd, under `prefix`.

    Keys: ``members/NODE``, ``leader`` and ``serving/CONNECTION`` under this node's lease;
    ``assignment/CONNECTION`` ({node, epoch}) and ``epoch`` (the last epoch given), written
    by the leader alone, in transactions that hold only while it leads."""

    def __init__(
        self,
        endpoints: list[str],
        node: str,
        member: Member | None = None,
        *,
        prefix: str = "/mailport",
        lease_ttl: int = 5,
    ) -> None:
        self.etcd = client(endpoints)
        self.node = node
        self.member = member or Member()
        self.prefix = prefix.rstrip("/")
        self.lease = Lease(self.etcd, lease_ttl)
        self.leading = False
        self.held: set[str] = set()
        self._held_under = 0  # the lease generation the serving keys were written under

    async def assign(self, node: str, connections: Mapping[str, Want]) -> dict[str, int]:
        if node != self.node:
            raise ValueError(f"this coordinator speaks for {self.node}, not {node}")
        try:
            if await self.lease.ensure():
                assert self.lease.id is not None
                await membership.join(self.etcd, self.prefix, self.node, self.member, self.lease.id)
            assert self.lease.id is not None
            self.leading = await election.campaign(self.etcd, self.prefix, self.node, self.lease.id)
            if self.leading:
                await self._lead(connections)
            owners = await self._assignment()
        except Exception as exc:
            raise CoordinatorUnavailable(f"etcd: {exc or type(exc).__name__}") from exc
        if not self.lease.alive:  # the answer may be older than our claim to it
            raise CoordinatorUnavailable("the etcd lease ran out")
        return {name: o.epoch for name, o in owners.items() if o.node == self.node}

    async def hold(self, names: set[str]) -> set[str]:
        if self._held_under != self.lease.generation:
            self.held = set()  # a new lease: the old one's serving keys are gone
        try:
            assert self.lease.id is not None
            ops, me = self.etcd.transactions, self.node.encode()
            for name in sorted(self.held - names):
                key = self._key(f"serving/{name}")
                await self.etcd.transaction(
                    compare=[ops.value(key) == me], success=[ops.delete(key)], failure=[]
                )
                self.held.discard(name)
            for name in sorted(names - self.held):
                key = self._key(f"serving/{name}")
                took, _ = await self.etcd.transaction(
                    compare=[ops.create(key) == 0],
                    success=[ops.put(key, me, lease=self.lease.id)],
                    failure=[],
                )
                if took:
                    self.held.add(name)
        except Exception as exc:
            raise CoordinatorUnavailable(f"etcd: {exc or type(exc).__name__}") from exc
        self._held_under = self.lease.generation
        return set(self.held)

    async def _lead(self, connections: Mapping[str, Want]) -> None:
        """Compute the assignment from the live members and write what changed."""
        assert self.lease.id is not None
        current = await self._assignment()
        members = await membership.members(self.etcd, self.prefix)
        found = await self.etcd.get(self._key("epoch"))
        epoch = _next_epoch(int(found.value) if found is not None else 0)
        wanted = assign(connections, members, current, epoch)
        ops = self.etcd.transactions
        writes = [
            ops.put(self._key(f"assignment/{name}"), _encode(owner))
            for name, owner in wanted.items()
            if current.get(name) != owner
        ]
        writes += [
            ops.delete(self._key(f"assignment/{name}")) for name in current.keys() - wanted.keys()
        ]
        if not writes:
            return
        writes.append(ops.put(self._key("epoch"), str(epoch).encode()))
        await self.etcd.transaction(
            compare=[election.leading(self.etcd, self.prefix, self.node, self.lease.id)],
            success=writes,
            failure=[],
        )

    async def _assignment(self) -> dict[str, Owner]:
        start = self._key("assignment/")
        return {
            kv.key[len(start) :].decode(): _decode(kv.value)
            for kv in await self.etcd.get_prefix(start)
        }

    def _key(self, name: str) -> bytes:
        return f"{self.prefix}/{name}".encode()

    async def view(self) -> dict[str, Any]:
        leader = await election.leader(self.etcd, self.prefix)
        return {
            "coordinator": "etcd",
            "leader": leader.decode().partition("@")[0] if leader else None,
            "members": sorted(await membership.members(self.etcd, self.prefix)),
            "assignment": {
                name: {"node": o.node, "epoch": o.epoch}
                for name, o in sorted((await self._assignment()).items())
            },
        }

    async def settings(self, local: Settings) -> tuple[Settings, int]:
        try:
            await shared_config.seed(self.etcd, self.prefix, local)
            shared, revision = await shared_config.read(self.etcd, self.prefix)
        except Exception as exc:
            raise CoordinatorUnavailable(f"etcd: {exc or type(exc).__name__}") from exc
        return shared_config.merged(local, shared or {}), revision

    async def settings_changes(self, local: Settings, after: int) -> AsyncIterator[tuple[Any, int]]:
        async for shared, revision in shared_config.watch(self.etcd, self.prefix, after):
            try:
                yield shared_config.merged(local, shared), revision
            except ValidationError as exc:
                yield exc, revision

    async def close(self) -> None:
        """Leave the cluster at once: the lease's keys go now, and the leader (which may be
        another node) hands this node's connections on at its next round."""
        await self.lease.revoke()
        await self.etcd.close()


def _encode(owner: Owner) -> bytes:
    return json.dumps({"node": owner.node, "epoch": owner.epoch}).encode()


def _decode(value: bytes) -> Owner:
    data = json.loads(value)
    return Owner(str(data["node"]), int(data["epoch"]))
