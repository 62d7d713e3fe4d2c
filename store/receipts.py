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

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailport.mail.receipts import Receipt
from mailport.store import schema
from mailport.store.records import Arrived, StoredReceipt


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
            # Receipts another router shard is leasing right now are passed over, so none
            # is leased to two at once.
            query = select(r).where(due).order_by(r.c.id).limit(limit)
            rows = (await conn.execute(query.with_for_update(skip_locked=True))).all()
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

    async def match_outbound(
        self: _Transactions, outbound_ids: Iterable[int], message_ids: Iterable[str]
    ) -> tuple[int, str, str | None] | None:
        """The outbound message a receipt answers: by the id its ENVID or VERP address
        carries, else by a Message-ID it quotes. (id, Message-ID, application), or None."""
        t = schema.outbound
        columns = (t.c.id, t.c.message_id, t.c.application)
        async with self.engine.connect() as conn:
            for query in (
                select(*columns).where(t.c.id.in_(list(outbound_ids))),
                select(*columns).where(t.c.message_id.in_(list(message_ids))),
            ):
                query = query.order_by(t.c.id)
                row = (await conn.execute(query.limit(1))).first()
                if row is not None:
                    return int(row.id), str(row.message_id), row.application
        return None

    async def timeline(self: _Transactions, outbound_id: int) -> list[dict[str, Any]]:
        """What became of one outbound message, oldest first: every delivery attempt of
        every recipient, then every receipt."""
        a, r = schema.outbound_attempts, schema.receipts
        async with self.engine.connect() as conn:
            tried = await conn.execute(
                select(a).where(a.c.outbound_id == outbound_id).order_by(a.c.id)
            )
            came = await conn.execute(
                select(r).where(r.c.outbound_id == outbound_id).order_by(r.c.id)
            )
            events = [
                {
                    "at": row.at,
                    "event": "attempt",
                    "recipient": row.recipient,
                    "outcome": row.outcome,
                    "code": row.code,
                    "text": row.text,
                }
                for row in tried
            ] + [
                {
                    "at": row.received_at,
                    "event": row.kind,
                    "source": row.source,
                    "state": row.state,
                    "receipt": json.loads(row.data),
                }
                for row in came
            ]
        return sorted(events, key=lambda e: e["at"])

    async def receipt_states(self: _Transactions) -> dict[str, int]:
        """How many receipts are in each state: pending, handled, orphaned, failed, …"""
        r = schema.receipts
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(r.c.state, func.count()).group_by(r.c.state))
            return {state: n for state, n in rows}

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


async def record_arrived(conn: AsyncConnection, arrived: Arrived, key: str, now: float) -> None:
    """A receipt that came by mail: kept for its application (or as orphaned), and what it
    says written on the outbound message it answers."""
    state = "pending" if arrived.outbound_id is not None else "orphaned"
    row = receipt_row(
        arrived.receipt,
        source="mail",
        source_key=key,
        outbound_id=arrived.outbound_id,
        message_id=arrived.message_id,
        application=arrived.application,
        state=state,
        now=now,
    )
    await record_receipts(conn, [row])
    if arrived.outbound_id is not None and arrived.receipt.kind == "dsn":
        await _mark_outbound(conn, arrived.outbound_id, arrived.receipt)


# Delivered, or handed on to a system that reports no further (RFC 3464 section 2.3.3).
_ARRIVED = ("delivered", "relayed", "expanded")


async def _mark_outbound(conn: AsyncConnection, outbound_id: int, receipt: Receipt) -> None:
    """A DSN's word on the message: failed when every recipient it names failed and no
    recipient of ours is left; delivered when each it names was delivered."""
    t = schema.outbound
    row = (await conn.execute(select(t.c.recipients).where(t.c.id == outbound_id))).first()
    if row is None:
        return
    ours = {r.lower() for r in json.loads(row.recipients)}
    failed = [r for r in receipt.recipients if r.action == "failed"]
    values: dict[str, Any] = {}
    if failed:
        values["last_error"] = "; ".join(
            f"{r.recipient}: {r.status} {r.reason}: {r.diagnostic}".strip() for r in failed
        )
        if ours <= {r.recipient.lower() for r in failed} or len(ours) == len(failed):
            values["state"] = "failed"
    elif receipt.recipients and all(r.action in _ARRIVED for r in receipt.recipients):
        values["state"] = "delivered"
    if values:
        await conn.execute(update(t).where(t.c.id == outbound_id).values(**values))


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
