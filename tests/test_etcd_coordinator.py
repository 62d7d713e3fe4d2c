"""Membership, election, assignment and fencing over a real 3-member etcd cluster on
127.0.0.1. Each "node" here is an EtcdCoordinator in this process: what the nodes of a
cluster say to etcd, without Ray."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailport.cluster.assignment import Want
from mailport.cluster.coordinator import CoordinatorUnavailable, EtcdCoordinator
from mailport.store import Contact, Fate, Fenced, Finished, Store
from tests.servers.etcd import EtcdCluster
from tests.stores import BACKENDS, new_database

TTL = 2
CONNECTIONS = {f"mailbox-{i:02}": Want() for i in range(12)}


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(3)
    yield cluster
    cluster.stop()


@pytest.fixture
async def nodes(etcd: EtcdCluster) -> AsyncIterator[dict[str, EtcdCoordinator]]:
    prefix = f"/test-{uuid.uuid4().hex[:8]}"
    made = {
        name: EtcdCoordinator(etcd.endpoints, name, prefix=prefix, lease_ttl=TTL)
        for name in ("n1", "n2", "n3")
    }
    yield made
    for coordinator in made.values():
        await coordinator.close()


async def _round(nodes: dict[str, EtcdCoordinator]) -> dict[str, dict[str, int]]:
    """One reconcile round of every node (the leader's first, so all see the same)."""
    order = sorted(nodes.values(), key=lambda c: not c.leading)
    return {c.node: await c.assign(c.node, CONNECTIONS) for c in order}


async def _settled(nodes: dict[str, EtcdCoordinator]) -> dict[str, dict[str, int]]:
    for _ in range(3):  # joins are seen by the leader on its next round
        got = await _round(nodes)
    return got


def _owners(shares: dict[str, dict[str, int]]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for node, share in shares.items():
        for connection in share:
            assert connection not in owners, f"{connection} served twice"
            owners[connection] = node
    return owners


async def test_one_leader_and_every_mailbox_served_once_balanced(
    nodes: dict[str, EtcdCoordinator],
) -> None:
    shares = await _settled(nodes)
    assert sum(c.leading for c in nodes.values()) == 1
    assert set(_owners(shares)) == set(CONNECTIONS)
    assert sorted(len(s) for s in shares.values()) == [4, 4, 4]
    view = await nodes["n1"].view()
    assert view["members"] == ["n1", "n2", "n3"]
    assert view["leader"] in nodes
    assert {c: a["node"] for c, a in view["assignment"].items()} == _owners(shares)


async def test_a_lost_node_s_mailboxes_move_within_the_lease(
    nodes: dict[str, EtcdCoordinator],
) -> None:
    before = _owners(await _settled(nodes))
    lost = next(c for c in nodes.values() if not c.leading)
    lost.lease.stop_keepalive()  # its process lives on, but says nothing to etcd
    started = time.monotonic()
    survivors = {n: c for n, c in nodes.items() if c is not lost}
    while True:
        after = _owners(await _round(survivors))
        if set(after) == set(CONNECTIONS):
            break
        assert time.monotonic() - started < TTL + 2, "the lost node's mailboxes not moved"
        await asyncio.sleep(0.1)
    moved = {c for c in CONNECTIONS if before[c] != after[c]}
    assert moved == {c for c, node in before.items() if node == lost.node}
    assert sorted(len([c for c in after if after[c] == n]) for n in survivors) == [6, 6]


async def test_a_lost_leader_is_replaced(nodes: dict[str, EtcdCoordinator]) -> None:
    await _settled(nodes)
    leader = next(c for c in nodes.values() if c.leading)
    leader.lease.stop_keepalive()
    others = {n: c for n, c in nodes.items() if c is not leader}
    started = time.monotonic()
    while not any(c.leading for c in others.values()):
        assert time.monotonic() - started < TTL + 2, "no new leader"
        await _round(others)
        await asyncio.sleep(0.1)
    shares = await _settled(others)
    assert set(_owners(shares)) == set(CONNECTIONS)
    # The old leader, still running, learns it lost its lease: it joins again as a member.
    await leader.assign(leader.node, CONNECTIONS)
    assert not leader.leading
    assert leader.node in (await leader.view())["members"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_cut_off_owner_cannot_commit_once_its_mailbox_moved(
    nodes: dict[str, EtcdCoordinator],
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    url = new_database(request, backend, tmp_path)
    # Each node has a store of its own on the shared database, as separate processes would.
    store, new_owners_store = await Store.open(url), await Store.open(url)
    try:
        shares = await _settled(nodes)
        old = next(c for c in nodes.values() if not c.leading)
        mailbox, old_epoch = sorted(shares[old.node].items())[0]
        await store.fence(mailbox, old_epoch)
        assert await store.claim(mailbox, old_epoch, ["uid-1"]) == {"uid-1": Fate.CLAIMED}

        old.lease.stop_keepalive()
        survivors = {n: c for n, c in nodes.items() if c is not old}
        started = time.monotonic()
        while True:
            owners = await _round(survivors)
            new = next((n for n, share in owners.items() if mailbox in share), None)
            if new is not None:
                break
            assert time.monotonic() - started < TTL + 2
            await asyncio.sleep(0.1)
        new_epoch = owners[new][mailbox]
        assert new_epoch > old_epoch
        # What the new owner's connection does first.
        await new_owners_store.fence(mailbox, new_epoch)

        # The old owner lives on and tries to commit what it was doing: refused, every way.
        with pytest.raises(Fenced):
            await store.claim(mailbox, old_epoch, ["uid-2"])
        contact = Contact("in", mailbox, "app", "<m1@x.example>", "a@x.example", (), "s", "handled")
        with pytest.raises(Fenced):
            await store.finish([Finished(mailbox, old_epoch, "uid-1", Fate.DONE, contact)])
        # The new owner proceeds, with the message the old one claimed among its own.
        claimed = await new_owners_store.claim(mailbox, new_epoch, ["uid-1", "uid-2"])
        assert claimed == {"uid-1": Fate.CLAIMED, "uid-2": Fate.CLAIMED}
        done = Finished(mailbox, new_epoch, "uid-1", Fate.DONE, contact)
        assert await new_owners_store.finish([done]) == [True]
        [row] = await store.rows("inbound", dedupe_key="uid-1")
        assert (row["state"], row["epoch"]) == ("done", new_epoch)
    finally:
        await store.close()
        await new_owners_store.close()


async def test_service_goes_on_without_one_etcd_member(
    etcd: EtcdCluster, nodes: dict[str, EtcdCoordinator]
) -> None:
    before = _owners(await _settled(nodes))
    etcd.kill(0)
    try:
        failures = 0
        for _ in range(20):  # 2 s of rounds: longer than a lease
            try:
                after = _owners(await _round(nodes))
            except CoordinatorUnavailable:
                failures += 1  # the call in flight when the member went
            await asyncio.sleep(0.1)
        assert failures <= 3
        assert after == before  # no lease ran out, so nothing moved
    finally:
        etcd.revive(0)


async def test_a_node_that_cannot_reach_etcd_stops_then_resumes() -> None:
    lone = EtcdCluster.start(1)
    node = EtcdCoordinator(lone.endpoints, "n1", prefix="/alone", lease_ttl=TTL)
    try:
        assert set(await node.assign("n1", CONNECTIONS)) == set(CONNECTIONS)
        lone.kill(0)
        with pytest.raises(CoordinatorUnavailable):
            await node.assign("n1", CONNECTIONS)
        lone.revive(0)
        started = time.monotonic()
        while True:
            try:
                back = await node.assign("n1", CONNECTIONS)
                break
            except CoordinatorUnavailable:
                assert time.monotonic() - started < 15, "no answer after etcd came back"
                await asyncio.sleep(0.2)
        assert set(back) == set(CONNECTIONS)
    finally:
        await node.close()
        lone.stop()
