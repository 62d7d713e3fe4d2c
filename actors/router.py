"""RouterShard: parse, route, run the application, and record the outcome in one transaction.

Messages of one conversation always reach the same shard, and a shard handles its messages
one at a time, so the check "already processed?" and the commit cannot interleave."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import ray

from mailport.actors.application import ApplicationContext, Handler, load_handler, run_handler
from mailport.actors.events import EventSink
from mailport.actors.receipt_handoff import ReceiptHandOff
from mailport.actors.stats import Event
from mailport.config.models import Settings
from mailport.config.routing import route
from mailport.mail.compose import HeaderInjectionError, OutboundMessage, compose
from mailport.mail.message import Address, ParsedMessage
from mailport.mail.parse import parse
from mailport.mail.receipts import Receipt, classify
from mailport.mail.receipts.correlation import quoted_ids, tagged_ids
from mailport.store import (
    Arrived,
    Contact,
    Fate,
    Fenced,
    Finished,
    Outgoing,
    ReplyLimit,
    Store,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundItem:
    connection: str
    epoch: int
    key: str
    raw: bytes


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0.01)
class RouterShard:
    def __init__(self, settings: Settings, index: int) -> None:
        self.settings = settings
        self.index = index
        self.store: Store | None = None
        self.handlers: dict[str, Handler] = {}
        self.lock = asyncio.Lock()
        self.events = EventSink()
        self.outbound: dict[str, Any] = {}
        self.receipts: asyncio.Task[None] | None = None
        self.handoff: ReceiptHandOff | None = None
        self.opening = asyncio.Lock()

    async def ping(self) -> int:
        return self.index

    async def ensure_running(self) -> None:
        """Keep handing receipts to the applications that sent the mail they answer."""
        if self.receipts is None or self.receipts.done():
            store = await self._store()
            self.handoff = ReceiptHandOff(self.settings)
            self.receipts = asyncio.create_task(self.handoff.run(store))

    async def configure(self, settings: Settings) -> None:
        """New applications and routing rules, for the next batch (a batch under way
        finishes with the ones it started with)."""
        async with self.lock:
            self.settings = settings
            self.handlers = {}
            self.outbound = {}
            if self.handoff is not None:
                self.handoff.settings, self.handoff.handlers = settings, {}

    async def _store(self) -> Store:
        async with self.opening:  # process() and ensure_running() may both ask first
            if self.store is None:
                self.store = await Store.open(self.settings.store.url, migrate=False)
        return self.store

    async def process(self, items: list[InboundItem]) -> dict[str, Fate | None]:
        """The fate of each item; None where it was not finished and must be retried."""
        async with self.lock:
            return await self._process(await self._store(), items)

    async def _process(self, store: Store, items: list[InboundItem]) -> dict[str, Fate | None]:
        # A redelivery (the inbound side crashed after handing a message over) must not run
        # the application again. Under the shard's lock nothing can finish these messages
        # between this read and our own commit.
        known = await store.fates([i.key for i in items])
        results: dict[str, Fate | None] = {k: f for k, f in known.items() if f.finished}
        todo = [
            (item, await self._decide(store, item)) for item in items if item.key not in results
        ]
        if not todo:
            return results
        try:
            fresh = await store.finish([outcome for _, outcome in todo])
        except Fenced as exc:
            log.warning("%s", exc)
            return results | {item.key: None for item, _ in todo}
        except Exception as exc:
            log.error("cannot record %d outcome(s): %s", len(todo), exc)
            for item, _ in todo:
                self._emit(item, None, None, "error", f"cannot record: {exc}")
            return results | {item.key: None for item, _ in todo}
        for (item, outcome), is_fresh in zip(todo, fresh, strict=True):
            results[item.key] = outcome.fate
            if is_fresh:
                await self._announce(store, item, outcome)
        if any(outcome.outgoing for _, outcome in todo):
            self._wake_outbound()  # once per batch: it is a Ray call per connection
        return results

    async def _announce(self, store: Store, item: InboundItem, outcome: Finished) -> None:
        c = outcome.contact
        self._emit(item, c.application, c.message_id, c.status, c.reason)
        if outcome.quarantine:
            await _quietly(
                store.raise_alarm(
                    f"quarantine:{item.connection}",
                    f"{item.connection}: message quarantined: {outcome.quarantine[0]}",
                    severity="warning",
                )
            )

    async def _decide(self, store: Store, item: InboundItem) -> Finished:
        try:
            message = parse(item.raw)
        except Exception as exc:  # parse() is built not to raise; if it does, keep the mail
            return _quarantined(item, None, f"parser crashed: {type(exc).__name__}: {exc}")
        if message.fatal:
            return _quarantined(item, message, message.fatal)
        try:
            receipt = classify(item.raw)
        except Exception as exc:  # built not to raise, like parse(); if it does, keep the mail
            return _quarantined(item, message, f"receipt reader crashed: {exc!r}")
        if receipt.kind != "normal":
            # A receipt goes to the application that sent what it answers, never to the
            # routing rules: an application answering a bounce is how mail loops start.
            return await _receipt(store, item, message, receipt)
        name = route(self.settings.routing, message)
        app = self.settings.application(name)
        context = ApplicationContext(
            message=message,
            raw=item.raw,
            connection=item.connection,
            application=name,
            address=Address("", app.address),
            dedupe_key=item.key,
        )
        try:
            await run_handler(self._handler(app.handler), context)
            outgoing = tuple(_render(m, item.key, n, name) for n, m in enumerate(context.outbox))
        except HeaderInjectionError as exc:
            return _quarantined(item, message, f"application {name} composed a bad header: {exc}")
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return _quarantined(
                item,
                message,
                f"application {name} raised {type(exc).__name__}: {exc} "
                f"({where.filename}:{where.lineno})",
                application=name,
            )
        status, reason = "handled", None
        if context.unanswerable and not outgoing:
            status, reason = "unanswerable", context.unanswerable
        contact = _contact(item, message, status, reason, name)
        limit = self._limit(message, context.outbox)
        return Finished(
            item.connection, item.epoch, item.key, Fate.DONE, contact, outgoing, limit=limit
        )

    def _limit(self, message: ParsedMessage, outbox: list[OutboundMessage]) -> ReplyLimit | None:
        """Automatic replies count against the sender's daily allowance (RFC 3834 section 2)."""
        automatic = any(n.lower() == "auto-submitted" for m in outbox for n, _ in m.headers)
        if not automatic or not message.from_:
            return None
        return ReplyLimit(
            message.from_[0].address,
            self.settings.automatic_replies_per_sender,
            time.time() - 86400,
        )

    def _wake_outbound(self) -> None:
        """Tell the outbound connections there is new mail rather than wait for their poll."""
        for connection in self.settings.outbound:
            try:
                if connection.name not in self.outbound:
                    self.outbound[connection.name] = ray.get_actor(f"outbound:{connection.name}")
                self.outbound[connection.name].wake.remote()
            except Exception:  # not started yet, or restarting: it polls anyway
                self.outbound.pop(connection.name, None)

    def _handler(self, spec: str) -> Handler:
        if spec not in self.handlers:
            self.handlers[spec] = load_handler(spec)
        return self.handlers[spec]

    def _emit(
        self,
        item: InboundItem,
        application: str | None,
        message_id: str | None,
        status: str,
        detail: str | None,
        direction: str = "in",
    ) -> None:
        self.events.emit(Event(direction, item.connection, application, message_id, status, detail))


async def _receipt(
    store: Store, item: InboundItem, message: ParsedMessage, receipt: Receipt
) -> Finished:
    match = await store.match_outbound(tagged_ids(receipt, item.raw), quoted_ids(receipt, item.raw))
    outbound_id, message_id, application = match or (None, None, None)
    said = f"{receipt.kind} for {message_id}" if match else f"{receipt.kind}, orphaned"
    contact = _contact(item, message, "receipt", said, application)
    arrived = Arrived(receipt, outbound_id, message_id, application)
    return Finished(item.connection, item.epoch, item.key, Fate.DONE, contact, receipt=arrived)


def _render(message: OutboundMessage, key: str, n: int, application: str) -> Outgoing:
    # The Message-ID is derived from the inbound key, so a re-run renders the same id and the
    # queue's unique constraint refuses a second copy.
    domain = message.from_.address.rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(f"{key}\0{n}".encode()).hexdigest()[:32]
    composed = compose(message, message_id=f"<{digest}@{domain}>")
    return Outgoing(
        composed.message_id,
        composed.sender,
        composed.recipients,
        composed.data,
        composed.smtputf8,
        application,
    )


def _contact(
    item: InboundItem,
    message: ParsedMessage | None,
    status: str,
    reason: str | None,
    application: str | None,
) -> Contact:
    return Contact(
        direction="in",
        connection=item.connection,
        application=application,
        message_id=message.message_id if message else None,
        sender=message.from_[0].address if message and message.from_ else None,
        recipients=tuple(a.address for a in (*message.to, *message.cc)) if message else (),
        subject=message.subject if message else "",
        status=status,
        reason=reason,
        in_reply_to=message.in_reply_to if message else None,
        language=message.language if message else None,
        defects=message.defects if message else (),
    )


def _quarantined(
    item: InboundItem, message: ParsedMessage | None, reason: str, application: str | None = None
) -> Finished:
    contact = _contact(item, message, "quarantined", reason, application)
    return Finished(
        item.connection,
        item.epoch,
        item.key,
        Fate.QUARANTINED,
        contact,
        quarantine=(reason, item.raw),
    )


async def _quietly(call: Awaitable[None]) -> None:
    try:
        await call
    except Exception as exc:  # an alarm that cannot be written must not undo the processing
        log.error("cannot record an alarm: %s", exc)
