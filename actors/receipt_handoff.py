"""Hand each receipt to the receipt handler of the application that sent the message.

Receipts wait in the store; any router shard may lease a batch. A handler that raises marks
its receipt failed and raises an alarm: an operator decides, the receipt is not retried
forever. An application without a receipt handler has its receipts kept as "no handler"."""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailport.config.handlers import resolve
from mailport.config.models import Settings
from mailport.mail.receipts import Receipt
from mailport.store import Store, StoredReceipt

log = logging.getLogger(__name__)
LEASE = 60.0
BATCH = 32
POLL = 0.5


@dataclass(frozen=True)
class ReceiptContext:
    """What a receipt handler gets."""

    application: str
    message_id: str | None
    """The Message-ID of the message this receipt answers."""
    outbound_id: int | None
    source: str
    """smtp: the server we handed the message to refused it; mail: a report came back."""
    receipt: Receipt


ReceiptHandler = Callable[[ReceiptContext], Awaitable[None] | None]


class ReceiptHandOff:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.handlers: dict[str, ReceiptHandler] = {}

    async def run(self, store: Store) -> None:
        while True:
            try:
                handed = await self.hand_over(store)
            except Exception as exc:  # the store is away: try again, the receipts wait
                log.error("receipts: %s", exc)
                handed = 0
            if handed < BATCH:
                await asyncio.sleep(POLL)

    async def hand_over(self, store: Store) -> int:
        """Hand over one batch; how many receipts it held."""
        batch = await store.take_receipts(BATCH, LEASE)
        outcomes = [await self._hand(store, stored) for stored in batch]
        if outcomes:
            await store.receipts_handed(outcomes)
        return len(batch)

    async def _hand(self, store: Store, stored: StoredReceipt) -> tuple[int, str, str | None]:
        app = next((a for a in self.settings.applications if a.name == stored.application), None)
        if app is None or app.receipt_handler is None:
            return stored.id, "no handler", None
        context = ReceiptContext(
            application=app.name,
            message_id=stored.message_id,
            outbound_id=stored.outbound_id,
            source=stored.source,
            receipt=stored.receipt,
        )
        try:
            result = self._handler(app.receipt_handler)(context)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            error = (
                f"receipt handler of {app.name} raised {type(exc).__name__}: {exc}"
                f" ({where.filename}:{where.lineno})"
            )
            log.error("%s", error)
            await store.raise_alarm(f"receipts:{app.name}", error, severity="warning")
            return stored.id, "failed", error
        return stored.id, "handled", None

    def _handler(self, spec: str) -> ReceiptHandler:
        if spec not in self.handlers:
            self.handlers[spec] = resolve(spec)
        return self.handlers[spec]
