"""InboundConnection: one loop per configured mailbox, in explicit steps.

    pending → claim (store, under the epoch) → fetch → route (shard by thread) → settle

A message is settled on the server (flagged, moved, deleted) only after its shard has
recorded the outcome, with everything the application queued. A crash anywhere means the
message is seen again, and its finished claim turns the second pass into a settle only."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from typing import Any

import ray

from mailport.actors.imap import ImapMailbox
from mailport.actors.mailbox import Fetched, Mailbox
from mailport.actors.pop3 import Pop3Mailbox
from mailport.actors.router import InboundItem
from mailport.actors.smtp_listener import SmtpListenerMailbox
from mailport.actors.states import CANNOT_START
from mailport.config.models import ImapInbound, Inbound, Pop3Inbound, Settings
from mailport.mail.thread import shard_for, thread_key
from mailport.store import Fate, Fenced, Store, described

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0
DRAIN = 30.0  # seconds a stopping connection may take to settle the batch it holds
ALARM_AFTER = 2  # consecutive failures; one blip is not worth waking an operator


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0.01)
class InboundConnection:
    """One mailbox's loop. Made without a config, it is a standby: a process already
    started and imported, which `serve` turns into a connection's actor in one call (a new
    actor takes 1-2 s to start, which a failover would otherwise wait for)."""

    def __init__(
        self, settings: Settings, config: Inbound | None, epoch: int, shards: list[str]
    ) -> None:
        self.settings = settings
        self.config = config
        self.epoch = epoch
        self.shard_names = shards
        self.shards: list[Any] = []
        self.store: Store | None = None
        self.task: asyncio.Task[None] | None = None
        self.state = "starting" if config is not None else "standby"
        self.last_error: str | None = None
        self.failures = 0
        self.alarmed = True  # a restart may inherit an open alarm: clear it once connected
        self.stopping = False
        self.busy = False  # a batch is between fetch and settle

    async def serve(self, settings: Settings, config: Inbound, epoch: int) -> dict[str, Any]:
        """Serve `config` under `epoch` (the node says so each round): a standby takes it
        up, one that Ray restarted as a standby takes it up again, and one already serving
        it goes on as it is."""
        if self.config is None:
            self.settings, self.config, self.epoch = settings, config, epoch
            self.state = "starting"
        elif (self.config.name, self.epoch) != (config.name, epoch):
            raise RuntimeError(
                f"serving {self.config.name} under epoch {self.epoch}, not {config.name}"
                f" under {epoch}"
            )
        return await self.ensure_running()

    async def ensure_running(self) -> dict[str, Any]:
        """Start the loop if it is not running (first start, or after Ray restarted us)."""
        if self.config is None:
            return {"connection": None, "state": self.state, "epoch": None, "error": None}
        if (self.task is None or self.task.done()) and not self.stopping:
            self.task = asyncio.get_running_loop().create_task(self._run())
        return {
            "connection": self.config.name,
            "state": self.state,
            "epoch": self.epoch,
            "error": self.last_error,
        }

    async def prepare(self) -> None:
        """Open the store ahead of the work (a standby does, while it waits)."""
        if self.store is None:
            self.store = await Store.open(self.settings.store.url, migrate=False)

    @property
    def serving(self) -> Inbound:
        """The mailbox this actor serves (a standby serves none yet)."""
        assert self.config is not None, "a standby serves no mailbox"
        return self.config

    async def stop(self, drain: float = DRAIN) -> None:
        """Stop fetching. A batch already on its way finishes first (outcome committed,
        server marked), so whoever serves the mailbox next starts from a settled one and
        no application runs twice for a planned move."""
        self.stopping = True
        if self.task is None or self.task.done():
            return
        if not self.busy:  # waiting for mail, connecting or backing off: nothing in flight
            self.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), drain)
        except (asyncio.CancelledError, Exception):  # cancelled, failed, or too slow
            self.task.cancel()

    async def _start(self) -> Mailbox:
        self.shards = [ray.get_actor(name) for name in self.shard_names]
        await self.prepare()
        assert self.store is not None
        await self.store.fence(self.serving.name, self.epoch)
        return self._mailbox(self.store)

    async def _run(self) -> None:
        mailbox: Mailbox | None = None
        while True:
            try:
                if mailbox is None:  # the store may be what fails: retried like the server
                    mailbox = await self._start()
                self.state = "connecting"
                await mailbox.open()
                self.state, self.failures, self.last_error = "running", 0, None
                await self._alarm(None)
                while not self.stopping:
                    self.busy = True
                    try:
                        worked = await self._round(mailbox)
                    finally:
                        self.busy = False
                    if self.stopping:
                        break
                    if not worked:
                        self.state = "idle"
                        await mailbox.wait()
                        self.state = "running"
                self.state = "stopped"
                await mailbox.close()
                return
            except Fenced as exc:
                self.state, self.last_error = "fenced", str(exc)
                log.warning("%s: stopping: %s", self.serving.name, exc)
                if mailbox is not None:
                    await mailbox.close()
                return
            except asyncio.CancelledError:
                if mailbox is not None:
                    await mailbox.close()
                raise
            except Exception as exc:
                self.failures += 1
                self.state = "retrying" if mailbox is not None else CANNOT_START
                self.last_error = described(exc)
                log.warning("%s: %s", self.serving.name, self.last_error)
                if self.failures >= ALARM_AFTER:
                    await self._alarm(self.last_error)
                if mailbox is not None:
                    await mailbox.reset()
                if self.stopping:  # the batch failed; the next owner takes it from the top
                    return
                await asyncio.sleep(_backoff(self.failures))

    async def _alarm(self, error: str | None) -> None:
        """Raise the connection's alarm while it keeps failing; clear it once it works."""
        if self.store is None:  # the store cannot be opened: the error shows in the status
            return
        key = f"inbound:{self.serving.name}"
        try:
            if error is None:
                if self.alarmed:
                    await self.store.clear_alarm(key)
            else:
                await self.store.raise_alarm(key, f"{self.serving.name}: {error}")
            self.alarmed = error is not None
        except Exception as exc:  # the store may be what is failing; the loop goes on
            log.error("%s: cannot record the alarm: %s", self.serving.name, exc)

    async def _round(self, mailbox: Mailbox) -> bool:
        """One batch through the steps; False when there was nothing to do."""
        assert self.store is not None
        refs = await mailbox.pending()
        if not refs:
            return False
        fates = await self.store.claim(self.serving.name, self.epoch, [r.key for r in refs])
        done = [r for r in refs if fates[r.key] is Fate.DONE]
        quarantined = [r for r in refs if fates[r.key] is Fate.QUARANTINED]
        fetched = await mailbox.fetch([r for r in refs if not fates[r.key].finished])
        results = await self._route(fetched)
        for f in fetched:
            fate = results.get(f.ref.key)
            if fate is Fate.DONE:
                done.append(f.ref)
            elif fate is Fate.QUARANTINED:
                quarantined.append(f.ref)
        await mailbox.settle(done, quarantined)
        if len(done) + len(quarantined) < len(refs):
            raise RuntimeError(
                f"{len(refs) - len(done) - len(quarantined)} message(s) not processed; retrying"
            )
        return True

    async def _route(self, fetched: list[Fetched]) -> dict[str, Fate | None]:
        batches: dict[int, list[InboundItem]] = defaultdict(list)
        for f in fetched:
            shard = shard_for(thread_key(f.raw), len(self.shards))
            batches[shard].append(InboundItem(self.serving.name, self.epoch, f.ref.key, f.raw))
        calls = [self.shards[i].process.remote(items) for i, items in batches.items()]
        results: dict[str, Fate | None] = {}
        for outcome in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("%s: router shard failed: %s", self.serving.name, outcome)
                continue
            results.update(outcome)
        return results

    def _mailbox(self, store: Store) -> Mailbox:
        cfg = self.serving
        if isinstance(cfg, ImapInbound):
            return ImapMailbox(cfg)
        if isinstance(cfg, Pop3Inbound):
            return Pop3Mailbox(cfg)

        async def spool(key: str, raw: bytes) -> None:
            await store.spool(cfg.name, self.epoch, key, raw)

        async def spooled() -> list[tuple[str, bytes]]:
            return await store.spooled(cfg.name)

        return SmtpListenerMailbox(cfg, spool, spooled)


def _backoff(failures: int) -> float:
    return min(MAX_BACKOFF, 0.5 * 2.0 ** min(failures, 10)) * random.uniform(0.8, 1.2)
