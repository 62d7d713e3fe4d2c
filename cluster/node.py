"""A mailport node: starts its actors, keeps them running, and reports what they do."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, TextIO, TypeVar

import ray
from pydantic import BaseModel
from ray._private import ray_constants
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mailport.actors.application import unloadable
from mailport.actors.events import STATS_ACTOR
from mailport.actors.inbound import DRAIN, InboundConnection
from mailport.actors.outbound import OutboundConnection
from mailport.actors.router import RouterShard
from mailport.actors.states import CANNOT_START
from mailport.actors.stats import StatsAggregator
from mailport.cluster.assignment import Member, Want
from mailport.cluster.coordinator import (
    Coordinator,
    CoordinatorUnavailable,
    EtcdCoordinator,
    LocalCoordinator,
)
from mailport.cluster.standby import Standbys
from mailport.config.models import Inbound, Outbound, Settings, Store
from mailport.config.secrets import SecretSource
from mailport.store import Store as MailStore

NAMESPACE = "mailport"
log = logging.getLogger(__name__)


def anchored(settings: Settings, base: Path) -> Settings:
    """Relative paths made absolute: actors are processes whose working directory differs."""
    url = settings.store.url
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        url = prefix + str((base / url[len(prefix) :]).resolve())
    inbound = tuple(_paths_anchored(c, base) for c in settings.inbound)
    outbound = tuple(_paths_anchored(c, base) for c in settings.outbound)
    node = settings.node.model_copy(update={"data_dir": (base / settings.node.data_dir).resolve()})
    return settings.model_copy(
        update={"store": Store(url=url), "inbound": inbound, "outbound": outbound, "node": node}
    )


_Connection = TypeVar("_Connection", bound=BaseModel)


def _paths_anchored(connection: _Connection, base: Path) -> _Connection:
    """A connection's paths (a Maildir, a CA file, a secret's file) made absolute."""
    update: dict[str, Any] = {}
    for name in type(connection).model_fields:
        value = getattr(connection, name)
        if isinstance(value, Path):
            update[name] = (base / value).resolve()
        elif isinstance(value, SecretSource) and value.file is not None:
            update[name] = value.model_copy(update={"file": (base / value.file).resolve()})
    return connection.model_copy(update=update)


def loopback_only() -> None:
    """Keep a node of our own on 127.0.0.1. Ray swaps 127.0.0.1 for the machine's address
    and binds every interface unless it believes it runs where clusters are off (Windows,
    macOS). That belief is read from the environment when ray is imported: set it for the
    processes Ray starts, and in the constant this process has already read."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def init_ray(address: str | None = None, namespace: str = NAMESPACE) -> None:
    """Start Ray for one node on this machine, or join the cluster at `address`."""
    if not ray.is_initialized():
        options: dict[str, Any] = {}
        if address is None:
            loopback_only()
            options = {"num_cpus": max(os.cpu_count() or 2, 2)}
        ray.init(
            address=address,
            namespace=namespace,
            logging_level=logging.ERROR,
            include_dashboard=False,
            # Actors report through events, states and alarms; their raw logs stay in Ray's
            # session directory instead of interleaving with the node's own output.
            log_to_driver=False,
            **options,
        )


def coordinator_for(settings: Settings, node: str) -> Coordinator:
    cluster = settings.cluster
    if cluster.coordinator == "local":
        return LocalCoordinator()
    member = Member(capacity=cluster.capacity, zone=cluster.zone)
    return EtcdCoordinator(
        cluster.etcd, node, member, prefix=cluster.prefix, lease_ttl=cluster.lease_ttl
    )


def _ray_node(wanted: str | None) -> str:
    """The id of the Ray node this node's actors run on."""
    if wanted is None:
        return str(ray.get_runtime_context().get_node_id())
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node["Alive"] and (node["NodeID"] == wanted or wanted in node["Resources"]):
            return str(node["NodeID"])
    raise CannotStart(f"no live Ray node is {wanted!r} or has a resource of that name")


class NodeRunning(Exception):
    """Another node already runs from this data directory."""


class CannotStart(Exception):
    """The settings name something this node cannot use, such as a missing handler."""


def _lock(settings: Settings) -> TextIO:
    """Hold the data directory for this process: two nodes on one store would fence each
    other out in turn."""
    handle = open(settings.node.data_dir / "node.lock", "a+")  # noqa: SIM115 - held for life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise NodeRunning(
            f"another mailport node (pid {holder}) is running from {settings.node.data_dir}"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def status_file(settings: Settings) -> Path:
    return settings.node.data_dir / "status.json"


def read_status(settings: Settings) -> dict[str, Any] | None:
    """What the node running from this data directory last published, if it still runs."""
    try:
        status: dict[str, Any] = json.loads(status_file(settings).read_text())
        os.kill(int(status["pid"]), 0)
        return status
    except (OSError, ValueError, KeyError):
        return None


OUTBOUND = "outbound:"  # how outbound connections are named among assigned work
START_ALARM_AFTER = 3  # rounds of supervision (about a second each) before an alarm


class Node:
    """One mailport node: its router shards and statistics, and the connections the
    coordinator gives it (inbound under a fencing epoch, outbound as the pools it runs)."""

    def __init__(self, settings: Settings, coordinator: Coordinator | None = None) -> None:
        self.settings = settings
        self.name = settings.cluster.node_name or socket.gethostname()
        self.coordinator = coordinator or coordinator_for(settings, self.name)
        self.stats: Any = None
        self.shards: list[Any] = []
        self.shard_names: list[str] = []
        self.outbound: dict[str, Any] = {}
        self.inbound: dict[str, Any] = {}
        self.epochs: dict[str, int] = {}
        self.seen_events = 0
        self.store: MailStore | None = None
        self.lock: TextIO | None = None
        self.coordinator_lost = False
        self.cannot_start: dict[str, int] = {}  # connection: rounds in a row it could not
        self.placement: dict[str, Any] = {}
        self.local = settings
        """The settings file's; in a cluster, `settings` is these with the cluster's part."""
        self.revision = 0
        self.following: asyncio.Task[None] | None = None
        self.reconciling = asyncio.Lock()
        self.started = 0  # actors started, so a restarted connection's name is new
        self.standbys = Standbys(0, self._standby)

    @property
    def clustered(self) -> bool:
        return self.settings.cluster.coordinator != "local"

    async def start(self) -> None:
        problems = unloadable(self.settings.applications)
        if problems:
            raise CannotStart("; ".join(problems))
        self.settings.node.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = _lock(self.settings)
        if self.clustered:
            # Each node's actors go by the same names (router-0, stats, ...): a namespace
            # of its own keeps them apart in the shared Ray cluster.
            init_ray(self.settings.cluster.ray_address, f"{NAMESPACE}-{self.name}")
            strategy = NodeAffinitySchedulingStrategy(
                _ray_node(self.settings.cluster.ray_node), soft=True
            )
            self.placement = {"scheduling_strategy": strategy}
        else:
            init_ray()
        self.settings, self.revision = await self.coordinator.settings(self.local)
        self.store = await MailStore.open(self.settings.store.url)
        self.stats = self._place(StatsAggregator, name=STATS_ACTOR, get_if_exists=True).remote()
        self.shard_names = [f"router-{i}" for i in range(self.settings.node.shards)]
        self.shards = [
            self._place(RouterShard, name=name).remote(self.settings, i)
            for i, name in enumerate(self.shard_names)
        ]
        await asyncio.gather(*(s.ping.remote() for s in self.shards))
        if self.clustered:
            self.standbys.size = self.settings.cluster.standby
        await self.reconcile()
        self.following = asyncio.get_running_loop().create_task(self._follow_settings())

    async def _follow_settings(self) -> None:
        """Apply each change of the cluster's settings as it is made."""
        changes = self.coordinator.settings_changes(self.local, self.revision)
        async for settings, revision in changes:
            if isinstance(settings, Exception):
                # Keep running as we are: an operator must fix what was published.
                error = f"revision {revision} of the cluster settings is invalid: {settings}"
                log.error("%s", error)
                if self.store is not None:
                    await self.store.raise_alarm("cluster:settings", error)
                continue
            try:
                await self.apply(settings)
            except Exception as exc:  # an actor restarting: the next reconcile catches up
                log.error("applying revision %d: %s", revision, exc)
            self.revision = revision
            if self.store is not None:
                await self.store.clear_alarm("cluster:settings")

    async def apply(self, settings: Settings) -> None:
        """Run with new settings: restart only the connections whose settings changed, give
        the router shards the new applications and rules, start and stop the rest."""
        async with self.reconciling:
            old, self.settings = self.settings, settings
            inbound = {c.name: c for c in settings.inbound}
            outbound = {c.name: c for c in settings.outbound}
            changed_in = [c.name for c in old.inbound if inbound.get(c.name, c) != c]
            changed_out = [c.name for c in old.outbound if outbound.get(c.name, c) != c]
            await asyncio.gather(
                *(self._stop_inbound(n) for n in changed_in if n in self.inbound),
                *(self._stop_outbound(n) for n in changed_out if n in self.outbound),
            )
            if (old.applications, old.routing) != (settings.applications, settings.routing) or (
                old.automatic_replies_per_sender != settings.automatic_replies_per_sender
            ):
                await asyncio.gather(*(s.configure.remote(settings) for s in self.shards))
            await self._reconcile()

    def _place(self, cls: object, **options: Any) -> Any:
        """A Ray actor class with its options, on this node's Ray node when clustered."""
        return _actor(cls).options(**self.placement, **options)

    async def reconcile(self) -> None:
        """Make the running connection actors match what the coordinator assigns here."""
        async with self.reconciling:
            await self._reconcile()

    async def _reconcile(self) -> None:
        wants = {c.name: Want(c.weight, c.zone) for c in self.settings.inbound}
        wants |= {OUTBOUND + c.name: Want() for c in self.settings.outbound}
        try:
            wanted = await self.coordinator.assign(self.name, wants)
        except CoordinatorUnavailable as exc:
            # Ownership cannot be proved: stop claiming; the store's fence holds meanwhile.
            # Outbound mail goes on: the store leases each message to one sender.
            if not self.coordinator_lost:
                log.error("%s; stopping every inbound connection", exc)
            await asyncio.gather(*(self._stop_inbound(n) for n in list(self.inbound)))
            if self.store is not None:
                await self.store.raise_alarm(f"cluster:coordinator:{self.name}", str(exc))
            self.coordinator_lost = True
            await self.supervise()
            return
        if self.coordinator_lost and self.store is not None:
            await self.store.clear_alarm(f"cluster:coordinator:{self.name}")
        self.coordinator_lost = False
        # An epoch of its own that changed means it was another node's in between.
        leaving = [n for n in self.inbound if wanted.get(n) != self.epochs.get(n)]
        await asyncio.gather(*(self._stop_inbound(n) for n in leaving))
        gone = [n for n in self.outbound if OUTBOUND + n not in wanted]
        await asyncio.gather(*(self._stop_outbound(n) for n in gone))
        held = await self._hold(set(wanted))
        for config in self.settings.inbound:
            if config.name in held and config.name not in self.inbound:
                epoch = self.epochs[config.name] = wanted[config.name]
                actor = self.standbys.take()  # supervise() below has it serve the mailbox
                if actor is None:
                    actor = self._place(
                        InboundConnection, name=f"inbound:{config.name}:{epoch}:{self._serial()}"
                    ).remote(self.settings, config, epoch, self.shard_names)
                self.inbound[config.name] = actor
        for out in self.settings.outbound:
            if OUTBOUND + out.name in held and out.name not in self.outbound:
                self.outbound[out.name] = self._place(
                    OutboundConnection, name=OUTBOUND + out.name
                ).remote(self.settings, out.name)
        await self.supervise()
        self.standbys.refill()

    def _standby(self, serial: int) -> Any:
        actor = self._place(InboundConnection, name=f"inbound:standby:{serial}").remote(
            self.settings, None, 0, self.shard_names
        )
        actor.prepare.remote()  # in the background: its store connection, ready when taken
        return actor

    def _serial(self) -> int:
        self.started += 1
        return self.started

    async def _hold(self, names: set[str]) -> set[str]:
        """The connections this node may start now (another node may still be letting go)."""
        try:
            return await self.coordinator.hold(names)
        except CoordinatorUnavailable as exc:
            log.warning("%s; starting nothing new this round", exc)
            return set(self.inbound) | {OUTBOUND + n for n in self.outbound}

    async def add_inbound(self, config: Inbound) -> None:
        self.settings = self.settings.model_copy(
            update={"inbound": (*self.settings.inbound, config)}
        )
        await self.reconcile()

    async def add_outbound(self, config: Outbound) -> None:
        """Start a new outbound connection; it takes due mail from the queue at once."""
        self.settings = self.settings.model_copy(
            update={"outbound": (*self.settings.outbound, config)}
        )
        await self.reconcile()

    async def remove_inbound(self, name: str) -> None:
        self.settings = self.settings.model_copy(
            update={"inbound": tuple(c for c in self.settings.inbound if c.name != name)}
        )
        await self.reconcile()

    async def _stop_inbound(self, name: str) -> None:
        actor = self.inbound.pop(name)
        self.epochs.pop(name, None)
        try:
            await asyncio.wait_for(actor.stop.remote(), DRAIN + 5)
        except Exception as exc:  # it may be dead already; kill it either way
            log.info("stopping %s: %s", name, exc)
        ray.kill(actor)

    async def _stop_outbound(self, name: str) -> None:
        actor = self.outbound.pop(name)
        try:
            await asyncio.wait_for(actor.stop.remote(), DRAIN + 5)
        except Exception as exc:  # dead already, or too slow: its leases run out
            log.info("stopping outbound %s: %s", name, exc)
        ray.kill(actor)
        # Routers find it by name; ray.kill frees the name a little later, so wait for that
        # before a successor of the same name is made.
        for _ in range(50):
            try:
                ray.get_actor(OUTBOUND + name)
            except ValueError:
                return
            await asyncio.sleep(0.1)

    async def supervise(self) -> list[dict[str, Any]]:
        """Start any loop that is not running (Ray restarts crashed actors, not their loops).
        Each inbound actor is told what it serves: one that began as a standby comes back
        from a restart as a standby again, and takes its mailbox up from this."""
        configs = {c.name: c for c in self.settings.inbound}
        calls = [a.ensure_running.remote() for a in [*self.outbound.values(), *self.shards]]
        for name, actor in self.inbound.items():
            config, epoch = configs.get(name), self.epochs.get(name)
            if config is None or epoch is None:  # on its way out
                calls.append(actor.ensure_running.remote())
            else:
                calls.append(actor.serve.remote(self.settings, config, epoch))
        answers = await asyncio.gather(*(_bounded(c) for c in calls), return_exceptions=True)
        states = [a for a in answers if isinstance(a, dict)]
        await self._watch_starts(states)
        return states

    async def _watch_starts(self, states: list[dict[str, Any]]) -> None:
        """Raise the alarm for a connection whose actor keeps failing to start: it cannot
        raise one itself through a store it cannot open."""
        if self.store is None:
            return
        for state in states:
            name = state.get("connection")
            if name is None:
                continue
            key = f"start:{name}"
            if state["state"] == CANNOT_START:
                self.cannot_start[name] = rounds = self.cannot_start.get(name, 0) + 1
                if rounds == START_ALARM_AFTER:
                    text = f"{name} cannot start on node {self.name}: {state.get('error')}"
                    await self.store.raise_alarm(key, text)
            elif self.cannot_start.pop(name, 0) >= START_ALARM_AFTER:
                await self.store.clear_alarm(key)

    async def new_events(self) -> list[dict[str, Any]]:
        try:
            seq, events = await _bounded(self.stats.tail.remote(self.seen_events))
        except Exception:
            return []
        self.seen_events = seq
        return list(events)

    async def snapshot(self) -> dict[str, dict[str, int]]:
        """The live counters; empty while the statistics actor restarts (they start over)."""
        try:
            return dict(await _bounded(self.stats.snapshot.remote()))
        except Exception as exc:
            log.warning("statistics unavailable: %s", exc)
            return {}

    async def publish_status(self) -> dict[str, Any]:
        """Write the live counters and actor states where `mailport status` reads them."""
        status = {
            "pid": os.getpid(),
            "updated_at": time.time(),
            "counts": await self.snapshot(),
            "actors": await self.supervise(),
            "alarms": await self.store.open_alarms() if self.store else [],
            "receipts": await self.store.receipt_states() if self.store else {},
            "cluster": await self._cluster_view(),
            # What it runs with, for the commands that act on it (secrets are references).
            "settings": self.settings.model_dump(mode="json"),
        }
        path = status_file(self.settings)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(path)
        return status

    async def _cluster_view(self) -> dict[str, Any]:
        try:
            view = await self.coordinator.view()
        except Exception as exc:  # etcd away: say so, the rest of the status still counts
            return {"node": self.name, "error": f"{type(exc).__name__}: {exc}"}
        return {"node": self.name, **view}

    async def stop(self) -> None:
        if self.following is not None:
            self.following.cancel()
        await asyncio.gather(*(self._stop_inbound(n) for n in list(self.inbound)))
        await asyncio.gather(*(self._stop_outbound(n) for n in list(self.outbound)))
        self.standbys.close()
        for actor in [*self.shards, self.stats]:
            ray.kill(actor)
        self.shards.clear()
        status_file(self.settings).unlink(missing_ok=True)
        await self.coordinator.close()
        if self.store is not None:
            await self.store.close()
        if self.lock is not None:
            self.lock.close()


def _actor(cls: object) -> Any:
    """A @ray.remote class as Ray sees it; its .options() is invisible to the type checker."""
    return cls


async def _bounded(ref: Any, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)
