"""`mailport bench failover`: a node of three dies under steady inbound load; how long until
its mailboxes are served again, and whether any message was lost or handled twice.

A real cluster on this machine: Ray nodes from `ray.cluster_utils.Cluster`, a `mailport run
--cluster` process on each, a 3-member etcd cluster, a shared PostgreSQL and Dovecot. The
anchor is Ray's own word, in the same run, on when that node died: failover rides on the
etcd lease, not on that.

It uses the test suite's servers (tests/servers), so it runs from a checkout."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailport.bench.harness import Advance, Options, Result, scenario

REPO = Path(__file__).resolve().parents[1]
# Steady load: a message a mailbox every half second (24 a second over 12 mailboxes), which
# three nodes sharing this machine's two cores with etcd, PostgreSQL and Dovecot keep up with.
FEED_EVERY = 0.5


@scenario("failover", "a node dies under load; anchor: Ray's own detection of its death")
def bench_failover(options: Options, task: Callable[[str, float], Advance]) -> Result:
    if not (REPO / "tests" / "servers").is_dir():
        raise SystemExit("bench failover runs from a checkout: it uses tests/servers")
    sys.path.insert(0, str(REPO))
    from tests.apps import LEDGER
    from tests.servers.dovecot import Dovecot
    from tests.servers.etcd import EtcdCluster
    from tests.servers.postgres import Postgres
    from tests.servers.tls import make_tls

    ttl = 2 if options.quick else 5
    mailboxes = 6 if options.quick else 12
    root = Path(tempfile.mkdtemp(prefix="mailport-failover-"))
    ledger = root / "calls.jsonl"
    dovecot = Dovecot.start(make_tls(root / "tls"))
    etcd = EtcdCluster.start(3)
    postgres = Postgres.start()
    try:
        from tests.cluster_nodes import RayNodes

        store_url = postgres.url(postgres.new_database("failover"))
        ray_nodes = RayNodes({"PYTHONPATH": str(REPO), LEDGER: str(ledger)})
        try:
            return _measure(
                root, ledger, (dovecot, etcd, store_url), ray_nodes, ttl, mailboxes, task
            )
        finally:
            ray_nodes.shutdown()
    finally:
        postgres.stop()
        etcd.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)  # the nodes' logs, mail and data


def _measure(
    root: Path,
    ledger: Path,
    servers: tuple[Any, Any, str],
    ray_nodes: Any,
    ttl: int,
    mailboxes: int,
    task: Callable[[str, float], Advance],
) -> Result:
    from tests.apps import read_ledger
    from tests.cluster_nodes import MailportNode, cluster_settings, wait_for

    dovecot, etcd, store_url = servers
    users = [dovecot.new_user("fo") for _ in range(mailboxes)]
    settings = cluster_settings(
        root, users, dovecot, etcd.endpoints, ray_nodes.address, ttl, store_url
    )
    settings["node"] = {"shards": 2}  # as a node runs by default
    names = settings["inbound"]
    nodes: dict[str, MailportNode] = {}
    advance = task("starting 3 nodes", 3)
    for name in ("n1", "n2", "n3"):
        ray_nodes.add(name)
        nodes[name] = MailportNode(root, name, settings, {})
        advance(1)

    def serving() -> dict[str, str]:
        served: dict[str, str] = {}
        for name, node in nodes.items():
            if node.process.poll() is None:
                for connection, (state, _epoch) in node.running().items():
                    if state in ("running", "idle"):
                        served[connection] = name
        return served

    def view() -> dict[str, Any]:
        for node in nodes.values():
            cluster = (node.status() or {}).get("cluster", {})
            if node.process.poll() is None and "assignment" in cluster:
                return dict(cluster)
        return {}

    wait_for(lambda: len(serving()) == mailboxes and len(set(serving().values())) == 3, 120, "")
    sent: list[str] = []
    stop = threading.Event()

    def feed() -> None:  # one message a mailbox every FEED_EVERY seconds
        n = 0
        while not stop.is_set():
            for i, user in enumerate(users):
                message_id = f"<fo-{n}-{i}@customers.example>"
                sent.append(message_id)
                raw = f"From: c@customers.example\r\nMessage-ID: {message_id}\r\n\r\nhi\r\n"
                dovecot.append_many(user, [raw.encode()])
            n += 1
            stop.wait(FEED_EVERY)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    time.sleep(5)  # steady load first
    cluster = view()
    victim = next(n for n in nodes if n != cluster["leader"])
    lost_boxes = sorted(c for c, a in cluster["assignment"].items() if a["node"] == victim)
    lost_boxes = [c for c in lost_boxes if c in {b["name"] for b in names}]
    ray_id = ray_nodes.nodes[victim].node_id
    advance = task(f"killing {victim}", 1)
    killed_at = time.time()
    nodes[victim].kill()
    ray_nodes.remove(victim, graceful=False)
    advance(1)

    def first_after(connection: str) -> float | None:
        times = [
            c["at"]
            for c in read_ledger(str(ledger))
            if c["connection"] == connection
            and c["at"] > killed_at
            and c.get("namespace") != f"mailport-{victim}"
        ]
        return min(times) - killed_at if times else None

    wait_for(lambda: all(first_after(c) is not None for c in lost_boxes), 120, "failover", 0.5)
    failover = {c: round(first_after(c) or 0.0, 2) for c in lost_boxes}
    ray_saw = asyncio.run(_ray_declares_dead(ray_nodes.address, ray_id, killed_at))
    stop.set()
    feeder.join()
    deadline = time.monotonic() + 120
    while not set(sent) <= set(_handled(ledger, read_ledger)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for node in nodes.values():
        node.stop()
    # Processed means committed: a message's outcome and reply in the store. An application
    # run on the dead node whose batch never committed is run again by the new owner; that
    # is a rerun, counted apart, not a second processing.
    committed = asyncio.run(_committed(store_url))
    runs = Counter(_handled(ledger, read_ledger))
    replies = Counter(_in_reply_to(p) for p in (root / "outbox" / "new").iterdir())
    lost = len(set(sent) - set(committed))
    duplicated = sum(n - 1 for n in committed.values())
    worst = max(failover.values())
    return Result(
        scenario="failover",
        unit="seconds from node death to its mailboxes served again (max)",
        mailport=worst,
        anchor=round(ray_saw, 2),
        anchor_name="Ray declares the node dead",
        details={
            "lease TTL s": ttl,
            "mailboxes": mailboxes,
            "inbound load msg/s": round(mailboxes / FEED_EVERY, 1),
            "lost node's mailboxes": len(lost_boxes),
            **{f"failover {c} s": s for c, s in failover.items()},
            "messages sent": len(sent),
            "lost (not committed)": lost,
            "duplicated (committed twice)": duplicated,
            "replies sent twice": sum(n - 1 for n in replies.values()),
            "application reruns (uncommitted batch)": sum(n - 1 for n in runs.values()),
        },
        summary={
            "failover_s_max": worst,
            "failover_s": failover,
            "lost": lost,
            "duplicated": duplicated,
            "replies_sent_twice": sum(n - 1 for n in replies.values()),
            "application_reruns": sum(n - 1 for n in runs.values()),
            "lease_ttl_s": ttl,
        },
    )


async def _committed(url: str) -> Counter[str]:
    """Messages by how many inbound contacts the store committed for each."""
    from mailport.store import Store

    store = await Store.open(url)
    try:
        contacts = await store.rows("contacts", direction="in")
    finally:
        await store.close()
    return Counter(str(c["message_id"]) for c in contacts)


def _in_reply_to(path: Path) -> str:
    head = path.read_bytes().partition(b"\r\n\r\n")[0].decode()
    return next(
        line[13:].strip() for line in head.split("\r\n") if line.startswith("In-Reply-To: ")
    )


def _handled(ledger: Path, read_ledger: Callable[[str], list[dict[str, Any]]]) -> list[str]:
    return [c["message_id"] for c in read_ledger(str(ledger))]


async def _ray_declares_dead(address: str, node_id: str, since: float) -> float:
    """Seconds from `since` until Ray's control store marks the node dead."""
    import ray

    ray.init(address=address, logging_level=logging.ERROR, include_dashboard=False)
    try:
        while True:
            nodes = {n["NodeID"]: n for n in ray.nodes()}  # type: ignore[no-untyped-call]
            if node_id not in nodes or not nodes[node_id]["Alive"]:
                return time.time() - since
            if time.time() - since > 120:
                return float("nan")
            await asyncio.sleep(0.2)
    finally:
        ray.shutdown()
