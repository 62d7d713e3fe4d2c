"""OutboundConnection: lease due mail from the queue, deliver it over this connection, record it.

Connections compete for the queue, so an idle connection takes more and a dead one none:
that is the least-outstanding-work balance. A leased message whose holder dies is freed when
its lease ends, or at once when the connection restarts. The one window for a duplicate is
between the server's 250 and the settle that records it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from mailport.actors.breaker import Breaker
from mailport.actors.events import EventSink
from mailport.actors.settling import settle
from mailport.actors.stats import Event
from mailport.actors.transports import Result, SmtpPool, transport_for
from mailport.config.models import Settings, SmtpOutbound
from mailport.store import QueuedMail, Store

log = logging.getLogger(__name__)
LEASE = 300.0


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0.01)
class OutboundConnection:
    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.config = next(c for c in settings.outbound if c.name == name)
        self.task: asyncio.Task[None] | None = None
        self.woken = asyncio.Event()
        self.state = "starting"
        self.last_error: str | None = None
        self.events = EventSink()
        self.breaker = Breaker()
        self.pool: SmtpPool | None = None
        self.lifetime = settings.outbound_lifetime

    async def ensure_running(self) -> dict[str, Any]:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        pool = {"size": self.pool.size, "sessions": self.pool.sessions} if self.pool else None
        return {
            "connection": self.config.name,
            "state": self.state,
            "error": self.last_error,
            "pool": pool,
        }

    async def wake(self) -> None:
        self.woken.set()

    async def _run(self) -> None:
        store = await Store.open(self.settings.store.url)
        transport = transport_for(self.config)
        pool = self.pool = transport if isinstance(transport, SmtpPool) else None
        domains = self.config.sender_domains if isinstance(self.config, SmtpOutbound) else []
        released = await store.release_leases(self.config.name)
        if released:
            # The one window for a duplicate: these may have had their 250 before the crash.
            log.warning("%s: re-driving %d messages left in sending", self.config.name, released)
        try:
            while True:
                if pool is not None:
                    await self._follow_pool_size(store, pool)
                if not self.breaker.allows():
                    self.state = "open"  # failing: the other connections take the mail
                    await asyncio.sleep(0.2)
                    continue
                self.state = "running"
                # Half-open: a single message tries the connection before a full batch.
                width = (pool.size if pool else 8) * 4 if self.breaker.state == "closed" else 1
                batch = await store.take_outbound(self.config.name, width, LEASE, domains)
                if not batch:
                    self.state = "idle"
                    self.woken.clear()
                    try:
                        await asyncio.wait_for(self.woken.wait(), 0.5)
                    except TimeoutError:
                        pass
                    continue
                results = await asyncio.gather(*(transport.deliver(m) for m in batch))
                await self._record(store, batch, results)
                await self._watch_connection(store, results)
        finally:
            await transport.close()

    async def _follow_pool_size(self, store: Store, pool: SmtpPool) -> None:
        size = await store.pool_size(self.config.name)
        if size is not None and size != pool.size:
            log.info("%s: pool size %d -> %d", self.config.name, pool.size, size)
            pool.resize(size)

    async def _watch_connection(self, store: Store, results: list[Result]) -> None:
        key = f"outbound:{self.config.name}"
        failures = [r for r in results if r.connection_failed]
        if failures and len(failures) == len(results):
            if self.breaker.failed():
                await store.raise_alarm(
                    key,
                    f"{self.config.name}: taken out of rotation after {self.breaker.failures}"
                    f" failures in a row ({failures[-1].replies[0].text}); other connections carry"
                    " its mail, and it is retried on its own",
                )
        elif self.breaker.succeeded():
            await store.clear_alarm(key)

    async def _record(self, store: Store, batch: list[QueuedMail], results: list[Result]) -> None:
        now = time.time()
        settled = [
            settle(mail, result, self.config.name, self.lifetime, now)
            for mail, result in zip(batch, results, strict=True)
        ]
        # The window for a duplicate: mail the server took, not yet recorded as sent.
        await store.settle(settled)
        for mail, done in zip(batch, settled, strict=True):
            if done.state == "deferred":
                self.last_error = done.note
            event = Event(
                "out", self.config.name, mail.application, mail.message_id, done.state, done.note
            )
            self.events.emit(event)
