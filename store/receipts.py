"""The receipts book: what came back for mail we sent, and its hand-over to applications.

A receipt is written in the transaction that learns of it, then leased by one router shard
at a time, handed to the application's receipt handler and marked. The one window for a
second hand-over is a crash between the handler's return and that mark."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailport.mail.receipts import Receipt
from mailport.store import schema
from mailport.store.records import StoredReceipt


class _Transactions(Protocol):
    engine: AsyncEngine

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


class ReceiptsBook:
    """Store methods for receipts; mixed into Store."""

    async def take_receipts(self: _Transactions, limit: int, lease: float) -> list[StoredReceipt]:
        """Lease pending receipts, oldest first, to one handler."""
        now = time.time()
        r = schema.receipts
        due = (r.c.state == "pending") & or_(r.c.lease_until.is_(None), r.c.lease_until < now)
        async with self._tx() as conn:
            rows = (await conn.execute(select(r).where(due).order_by(r.c.id).limit(limit))).all()
            if rows:
                ids = [row.id for row in rows]
                await conn.execute(update(r).where(r.c.id.in_(ids)).values(lease_until=now + lease))
        return [_stored(row._mapping) for row in rows]

    async def receipts_handed(
        self: _Transactions, outcomes: Iterable[tuple[int, str, str | None]]
    ) -> None:
        """Mark receipts (id, state, error) as handed over, or failed in the handler."""
        now = time.time()
        r = schema.receipts
        async with self._tx() as conn:
            for receipt_id, state, error in outcomes:
                await conn.execute(
                    update(r)
                    .where(r.c.id == receipt_id)
                    .values(state=state, error=error, handled_at=now, lease_until=None)
                )

    async def receipts(
        self: _Transactions, *, outbound_id: int | None = None, state: str | None = None
    ) -> list[StoredReceipt]:
        """Receipts, oldest first: of one outbound message, or in one state."""
        r = schema.receipts
        query = select(r).order_by(r.c.id)
        if outbound_id is not None:
            query = query.where(r.c.outbound_id == outbound_id)
        if state is not None:
            query = query.where(r.c.state == state)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_stored(row._mapping) for row in rows]


async def record_receipts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(schema.receipts), rows)


def receipt_row(
    receipt: Receipt,
    *,
    source: str,
    source_key: str,
    outbound_id: int | None,
    message_id: str | None,
    application: str | None,
    state: str,
    now: float,
) -> dict[str, Any]:
    return dict(
        source_key=source_key,
        source=source,
        kind=receipt.kind,
        outbound_id=outbound_id,
        message_id=message_id,
        application=application,
        data=json.dumps(receipt.as_dict(), ensure_ascii=False),
        received_at=now,
        state=state,
    )


def _stored(row: Any) -> StoredReceipt:
    return StoredReceipt(
        id=row["id"],
        source=row["source"],
        outbound_id=row["outbound_id"],
        message_id=row["message_id"],
        application=row["application"],
        receipt=Receipt.from_dict(json.loads(row["data"])),
        received_at=row["received_at"],
        state=row["state"],
        error=row["error"],
    )
