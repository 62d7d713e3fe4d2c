"""OutboundConnection: lease due mail from the queue, deliver it over this connection, record it.

Connections compete for the queue, so an idle connection takes more and a dead one none:
that is the least-outstanding-work balance. A leased message whose holder dies is freed when
its lease ends. The one window for a duplicate is between the server's 250 and mark_sent."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import ray

from mailport.actors.events import EventSink
from mailport.actors.stats import Event
from mailport.actors.transports import Result, transport_for
from mailport.config.models import Settings, SmtpOutbound
from mailport.store import QueuedMail, Store

log = logging.getLogger(__name__)
LEASE = 300.0
MAX_ATTEMPTS = 12


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

    async def ensure_running(self) -> dict[str, Any]:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        return {"connection": self.config.name, "state": self.state, "error": self.last_error}

    async def wake(self) -> None:
        self.woken.set()

    async def _run(self) -> None:
        store = await Store.open(self.settings.store.url)
        transport = transport_for(self.config)
        width = self.config.pool_size if isinstance(self.config, SmtpOutbound) else 8
        try:
            while True:
                self.state = "running"
                batch = await store.take_outbound(self.config.name, width * 4, LEASE)
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
        finally:
            await transport.close()

    async def _record(self, store: Store, batch: list[QueuedMail], results: list[Result]) -> None:
        sent: list[int] = []
        for mail, result in zip(batch, results, strict=True):
            state = result.state
            if state == "deferred" and mail.attempts >= MAX_ATTEMPTS:
                state = "failed"
            failure = result.detail or "no reason given"
            detail = result.refused if state == "sent" else failure
            event = Event("out", self.config.name, mail.application, mail.message_id, state, detail)
            self.events.emit(event)
            if state == "sent" and result.refused:
                await store.mark_sent([mail.id], note=result.refused)
            elif state == "sent":
                sent.append(mail.id)
            elif state == "deferred":
                self.last_error = detail
                await store.mark_deferred([mail.id], detail or "", _retry_in(mail.attempts))
            else:
                await store.mark_failed([mail.id], detail or "")
        await store.mark_sent(sent)


def _retry_in(attempts: int) -> float:
    return min(3600.0, 2.0**attempts) * random.uniform(0.5, 1.0)
