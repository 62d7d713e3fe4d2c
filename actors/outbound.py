"""OutboundConnection: lease due mail from the queue, deliver it over this connection, record it.

Connections compete for the queue, so an idle connection takes more and a dead one none:
that is the least-outstanding-work balance. A leased message whose holder dies is freed when
its lease ends, or at once when the connection restarts. The one window for a duplicate is
between the server's 250 and the settle that records it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import ray

from mailport.actors.breaker import Breaker
from mailport.actors.events import EventSink
from mailport.actors.settling import settle
from mailport.actors.states import CANNOT_START
from mailport.actors.stats import Event
from mailport.actors.transports import Result, SmtpPool, Transport, transport_for
from mailport.config.models import Settings, SmtpOutbound
from mailport.store import QueuedMail, Store, described

log = logging.getLogger(__name__)
LEASE = 300.0
BATCH = 128  # messages leased, or recorded, in one transaction
GATHER = 0.02  # seconds the recorder waits for more results before it writes
MIN_HOLD = 4  # messages a session may hold however slow it is


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0.01)
class OutboundConnection:
    """One configured outbound connection, as a Ray actor around its OutboundLoop."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.loop = OutboundLoop(settings, name)

    async def ensure_running(self) -> dict[str, Any]:
        return self.loop.ensure_running()

    async def wake(self) -> None:
        self.loop.woken.set()

    async def stop(self, drain: float = 30.0) -> None:
        await self.loop.stop(drain)


class OutboundLoop:
    """Lease due mail, deliver it, record every recipient's reply; again, until stopped."""

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
        self.in_flight = 0
        """Leased and not yet recorded."""
        self.freed = asyncio.Event()
        self.stopping = False
        self._next_size_check = 0.0
        self._failed_starts = 0
        self._start_after = 0.0
        self._recorded: deque[tuple[float, int]] = deque()
        config = self.config
        self._remote = f"{config.host}:{config.port}" if isinstance(config, SmtpOutbound) else name

    async def stop(self, drain: float) -> None:
        """Lease nothing more, deliver and record what is in hand, then end: the next
        instance of this connection (here or on another node) starts with no mail of ours
        still in `sending`, so it frees nothing we are still delivering."""
        self.stopping = True
        self.woken.set()
        if self.task is None or self.task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), drain)
        except (asyncio.CancelledError, Exception):  # too slow or failed: its leases run out
            self.task.cancel()

    def ensure_running(self) -> dict[str, Any]:
        task = self.task
        error = (
            task.exception() if task is not None and task.done() and not task.cancelled() else None
        )
        if error is not None:
            # The loop ended on an error (the store cannot be opened, say): show it, and
            # start again after a pause that grows while it keeps failing.
            self.state, self.last_error = CANNOT_START, described(error)
            log.warning("%s: %s", self.config.name, self.last_error)
            self._failed_starts += 1
            self._start_after = time.monotonic() + min(30.0, 0.5 * 2**self._failed_starts)
            self.task = None
        idle = self.task is None or self.task.done()
        if idle and not self.stopping and time.monotonic() >= self._start_after:
            self.task = asyncio.get_running_loop().create_task(self.run())
        pool = {"size": self.pool.size, "sessions": self.pool.sessions} if self.pool else None
        return {
            "connection": self.config.name,
            "state": self.state,
            "error": self.last_error,
            "pool": pool,
        }

    async def run(self, until_idle: bool = False) -> None:
        """Deliver until cancelled; with until_idle, until no mail is due (benchmarks).

        Three parts run at once, like a worker pool: this loop leases mail into `todo`,
        one worker a session delivers it, and the recorder writes what came of it in
        batches, so neither the store nor the slowest message holds up the sessions."""
        store = await Store.open(self.settings.store.url, migrate=False)
        self._failed_starts = 0
        transport = transport_for(self.config)
        pool = self.pool = transport if isinstance(transport, SmtpPool) else None
        domains = self.config.sender_domains if isinstance(self.config, SmtpOutbound) else []
        released = await store.release_leases(self.config.name)
        if released:
            # The one window for a duplicate: these may have had their 250 before the crash.
            log.warning("%s: re-driving %d messages left in sending", self.config.name, released)
        todo: asyncio.Queue[QueuedMail] = asyncio.Queue()
        done: asyncio.Queue[tuple[QueuedMail, Result] | None] = asyncio.Queue()
        workers: list[asyncio.Task[None]] = []
        recorder = asyncio.create_task(self._recorder(store, done))
        self.in_flight = 0
        try:
            while not (self.stopping and not self.in_flight):
                if recorder.done():
                    recorder.result()  # the store failed: raise, and start again
                if pool is not None:
                    await self._follow_pool_size(store, pool)
                sessions = pool.size if pool is not None else 8
                while len(workers) < sessions:
                    workers.append(asyncio.create_task(self._worker(todo, done, transport)))
                if not self.breaker.allows():
                    self.state = "open"  # failing: the other connections take the mail
                    await asyncio.sleep(0.2)
                    continue
                if self.breaker.state == "half-open" and not self.in_flight:
                    await self._probe(store, transport)  # back without waiting for mail
                    continue
                self.state = "running"
                # Keep mail waiting for every session, and no more in hand than about two
                # seconds' work: what a slow connection holds, others cannot take.
                rate = self._rate()
                hold = BATCH if rate is None else int(min(4 * BATCH, 2 * rate))
                hold = max(MIN_HOLD * sessions, hold)
                room = 0 if self.stopping else min(BATCH, hold - self.in_flight)
                if room <= 0 or todo.qsize() >= min(BATCH, hold // 2):
                    await self._wait(self.freed, 0.5)
                    continue
                batch = await store.take_outbound(self.config.name, room, LEASE, domains)
                self.in_flight += len(batch)
                for mail in batch:
                    todo.put_nowait(mail)
                if batch:
                    continue
                if self.in_flight:
                    await self._wait(self.freed, 0.5)  # recorded mail may be due again
                    continue
                self.state = "idle"
                if until_idle:
                    return
                await self._wait(self.woken, 0.5)
        finally:
            for worker in workers:
                worker.cancel()  # what they held stays leased, freed when we restart
            await asyncio.gather(*workers, return_exceptions=True)
            done.put_nowait(None)
            try:
                if not recorder.done():
                    await asyncio.shield(recorder)  # what was delivered is recorded
            finally:
                await transport.close()
                await store.close()

    async def _worker(
        self,
        todo: asyncio.Queue[QueuedMail],
        done: asyncio.Queue[tuple[QueuedMail, Result] | None],
        transport: Transport,
    ) -> None:
        while True:
            mail = await todo.get()
            try:
                result = await transport.deliver(mail)
            except Exception as exc:  # a bug, not the server: keep the mail, say so
                log.exception("%s: delivering %s failed", self.config.name, mail.message_id)
                result = Result.every(mail.recipients, None, f"internal error: {exc!r}")
            done.put_nowait((mail, result))

    async def _recorder(
        self, store: Store, done: asyncio.Queue[tuple[QueuedMail, Result] | None]
    ) -> None:
        """Record results in batches: a batch closes when full, or GATHER seconds after its
        first result, since each write to the store costs about as much as a hundred
        messages' rows."""
        finished = False
        while not finished:
            items: list[tuple[QueuedMail, Result]] = []
            item = await done.get()
            deadline = time.monotonic() + GATHER
            while item is not None:
                items.append(item)
                left = deadline - time.monotonic()
                if len(items) >= BATCH or left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(done.get(), left)
                except TimeoutError:
                    break
            finished = item is None
            if not items:
                continue
            batch, results = [m for m, _ in items], [r for _, r in items]
            await self._record(store, batch, results)
            await self._watch_connection(store, results)
            self._recorded.append((time.monotonic(), len(items)))
            self.in_flight -= len(items)
            self.freed.set()

    def _rate(self) -> float | None:
        """Messages recorded a second, over the last two seconds; None before any."""
        now = time.monotonic()
        while len(self._recorded) > 1 and self._recorded[0][0] < now - 2.0:
            self._recorded.popleft()
        if not self._recorded:
            return None
        return sum(n for _, n in self._recorded) / max(0.25, now - self._recorded[0][0])

    @staticmethod
    async def _wait(event: asyncio.Event, timeout: float) -> None:
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def _follow_pool_size(self, store: Store, pool: SmtpPool) -> None:
        if time.monotonic() < self._next_size_check:
            return
        self._next_size_check = time.monotonic() + 1.0  # an operator's change shows within 1 s
        size = await store.pool_size(self.config.name, pool.config.pool_size)
        if size != pool.size:
            log.info("%s: pool size %d -> %d", self.config.name, pool.size, size)
            pool.resize(size)

    async def _probe(self, store: Store, transport: Transport) -> None:
        failure = await transport.probe()
        if failure is None:
            self.breaker.succeeded()
            self.last_error = None
            await store.clear_alarm(f"outbound:{self.config.name}")
        else:
            self.breaker.failed()
            self.last_error = failure

    async def _watch_connection(self, store: Store, results: list[Result]) -> None:
        key = f"outbound:{self.config.name}"
        failures = [r for r in results if r.connection_failed]
        if failures and len(failures) == len(results):
            if self.breaker.failed():
                await store.raise_alarm(
                    key,
                    f"{self.config.name}: taken out of rotation after {self.breaker.failures}"
                    f" failures in a row ({failures[-1].replies[0].text}); its mail goes through"
                    " any other connection, or waits, and it is tried again on its own",
                )
        elif self.breaker.succeeded():
            await store.clear_alarm(key)

    async def _record(self, store: Store, batch: list[QueuedMail], results: list[Result]) -> None:
        now = time.time()
        settled = [
            settle(mail, result, self.config.name, self.lifetime, now, self._remote)
            for mail, result in zip(batch, results, strict=True)
        ]
        # The window for a duplicate: mail the server took, not yet recorded as sent.
        await store.settle(settled)
        if all(done.state != "deferred" for done in settled):
            self.last_error = None  # what went wrong before is over
        for mail, done in zip(batch, settled, strict=True):
            if done.state == "deferred":
                self.last_error = done.note
            event = Event(
                "out", self.config.name, mail.application, mail.message_id, done.state, done.note
            )
            self.events.emit(event)
