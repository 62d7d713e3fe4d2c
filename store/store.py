"""The store: dedupe and fencing, the outbound queue, receipts, contacts and quarantine."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import case, delete, event, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mailport.store import locks, migrations, schema
from mailport.store.receipts import ReceiptsBook, receipt_row, record_arrived, record_receipts
from mailport.store.records import (
    Contact,
    Fate,
    Fenced,
    Finished,
    Outgoing,
    QueuedMail,
    Settled,
)


class Store(ReceiptsBook):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one writer: two transactions of this process would meet in its busy
        # handler, which sleeps in steps of up to 100 ms. Queue them here instead.
        self._writing = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Open the store at `url`, first bringing its schema to the newest revision unless
        `migrate` is False (actors: their node migrated it before starting them)."""
        engine = create_async_engine(url, pool_pre_ping=False)
        if engine.dialect.name not in ("sqlite", "postgresql"):
            await engine.dispose()
            raise ValueError(f"{engine.dialect.name}: the store runs on SQLite or PostgreSQL")
        if engine.dialect.name == "sqlite":
            _sqlite_for_many_processes(engine)
        store = cls(engine)
        if not migrate:
            return store
        try:
            async with migrations.one_at_a_time(), store._tx() as conn:
                await conn.run_sync(migrations.upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        if self._writing is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._writing, self.engine.begin() as conn:
            yield conn

    # -- fencing -------------------------------------------------------------------------

    async def fence(self, connection: str, epoch: int) -> int:
        """Raise the connection's epoch to at least `epoch`; return the epoch now in force."""
        f = schema.fences
        async with self._tx() as conn:
            # One statement, so that two nodes fencing at once can neither both insert nor
            # lower the epoch: the second waits on the row and keeps the greater.
            given = locks.upsert(conn, f).values(connection=connection, epoch=epoch)
            raised = case((given.excluded.epoch > f.c.epoch, given.excluded.epoch), else_=f.c.epoch)
            kept = given.on_conflict_do_update(
                index_elements=[f.c.connection], set_={"epoch": raised}
            ).returning(f.c.epoch)
            return int((await conn.execute(kept)).scalar_one())

    # -- inbound -------------------------------------------------------------------------

    async def claim(self, connection: str, epoch: int, keys: Iterable[str]) -> dict[str, Fate]:
        """Claim messages for processing; finished ones come back as DONE or QUARANTINED."""
        keys = list(dict.fromkeys(keys))
        now = time.time()
        async with self._tx() as conn:
            await _check_epoch(conn, connection, epoch)
            known = await _fates(conn, keys, lock=True)
            new = [(k, connection, epoch) for k in keys if k not in known]
            known.update(await _claim_new(conn, new, now))
            stale = [k for k, fate in known.items() if fate is Fate.CLAIMED]
            if stale:
                await conn.execute(
                    update(schema.inbound)
                    .where(schema.inbound.c.dedupe_key.in_(stale))
                    .values(epoch=epoch, claimed_at=now)
                )
        return {k: known.get(k, Fate.CLAIMED) for k in keys}

    async def spool(self, connection: str, epoch: int, key: str, raw: bytes) -> None:
        """Durably accept mail that arrived by SMTP, before answering 250."""
        async with self._tx() as conn:
            await _check_epoch(conn, connection, epoch)
            await conn.execute(
                insert(schema.inbound).values(
                    dedupe_key=key,
                    connection=connection,
                    epoch=epoch,
                    state=Fate.CLAIMED,
                    raw=raw,
                    claimed_at=time.time(),
                )
            )

    async def spooled(self, connection: str) -> list[tuple[str, bytes]]:
        """Spooled SMTP mail that is not yet processed, oldest first."""
        async with self._tx() as conn:
            rows = await conn.execute(
                select(schema.inbound.c.dedupe_key, schema.inbound.c.raw)
                .where(schema.inbound.c.connection == connection)
                .where(schema.inbound.c.state == Fate.CLAIMED)
                .where(schema.inbound.c.raw.is_not(None))
                .order_by(schema.inbound.c.claimed_at, schema.inbound.c.dedupe_key)
            )
            return [(r.dedupe_key, r.raw) for r in rows]

    async def fates(self, keys: list[str]) -> dict[str, Fate]:
        async with self.engine.connect() as conn:
            return await _fates(conn, keys)

    async def finish(self, outcomes: list[Finished]) -> list[bool]:
        """Record each outcome (its contact record, what it queued, its quarantine copy) in
        one transaction; for each, False if the message had already been finished."""
        now = time.time()
        async with self._tx() as conn:
            # Locks are taken in one order (fences, messages, senders), each sorted, so
            # that two batches cannot wait on each other.
            for connection, epoch in sorted({(o.connection, o.epoch) for o in outcomes}):
                await _check_epoch(conn, connection, epoch)
            fates = await _fates(conn, [o.key for o in outcomes], lock=True)
            # A message finished without a claim is claimed here first, so that it has a
            # row to lock like the others.
            unclaimed = {o.key: (o.key, o.connection, o.epoch) for o in outcomes}
            for key in fates:
                unclaimed.pop(key)
            fates.update(await _claim_new(conn, list(unclaimed.values()), now))
            fresh = [not fates.get(o.key, Fate.CLAIMED).finished for o in outcomes]
            for sender in sorted({o.limit.sender.lower() for o in outcomes if o.limit}):
                await locks.advisory(conn, locks.SENDER, sender)
            for outcome, is_fresh in zip(outcomes, fresh, strict=True):
                if is_fresh:
                    await _record(conn, outcome, now=now)
            return fresh

    # -- outbound queue ------------------------------------------------------------------

    async def enqueue(self, outgoing: Iterable[Outgoing]) -> None:
        now = time.time()
        outgoing = list(outgoing)
        if outgoing:
            async with self._tx() as conn:
                await _queue(conn, outgoing, None, now)

    async def take_outbound(
        self, connection: str, limit: int, lease: float, sender_domains: Iterable[str] = ()
    ) -> list[QueuedMail]:
        """Lease due mail to a connection. A lease that runs out (its holder died) frees
        the mail for any connection again. With sender_domains, only mail from those."""
        now = time.time()
        t = schema.outbound
        # A sending row is due again once its lease has run out (its holder died).
        due = (t.c.next_attempt_at <= now) & t.c.state.in_(("queued", "deferred", "sending"))
        domains = [d.lower() for d in sender_domains]
        if domains:
            due = due & or_(*(func.lower(t.c.sender).like(f"%@{d}") for d in domains))
        async with self._tx() as conn:
            rows = (
                await conn.execute(
                    select(t, schema.outbound_bodies.c.data.label("body"))
                    .select_from(
                        t.outerjoin(
                            schema.outbound_bodies,
                            schema.outbound_bodies.c.message_id == t.c.message_id,
                        )
                    )
                    .where(due)
                    .order_by(t.c.next_attempt_at, t.c.id)
                    .limit(limit)
                    # Rows another node is leasing right now are passed over, not waited
                    # for, and are never leased twice (OF: the body's side may be null).
                    .with_for_update(skip_locked=True, of=t)
                )
            ).all()
            if not rows:
                return []
            await conn.execute(
                update(t)
                .where(t.c.id.in_([r.id for r in rows]))
                .values(
                    state="sending",
                    connection=connection,
                    lease_until=now + lease,
                    next_attempt_at=now + lease,
                    attempts=t.c.attempts + 1,
                )
            )
            p = schema.outbound_pending
            left = await conn.execute(
                select(p.c.outbound_id, p.c.recipients).where(
                    p.c.outbound_id.in_([r.id for r in rows])
                )
            )
            pending: dict[int, str] = {i: recipients for i, recipients in left.all()}
        return [
            QueuedMail(
                r.id,
                r.message_id,
                r.sender,
                tuple(json.loads(pending.get(r.id, r.recipients))),
                r.body if r.body is not None else r.data,  # rows queued before the split
                bool(r.smtputf8),
                r.attempts + 1,
                r.application,
                r.queued_at,
            )
            for r in rows
        ]

    async def release_leases(self, connection: str) -> int:
        """Free the mail a connection's previous incarnation held: it died with them."""
        t = schema.outbound
        async with self._tx() as conn:
            result = await conn.execute(
                update(t)
                .where(t.c.state == "sending", t.c.connection == connection)
                .values(state="queued", lease_until=None, next_attempt_at=time.time())
            )
        return int(result.rowcount or 0)

    async def settle(self, settled: Iterable[Settled]) -> None:
        """Record a batch of delivery attempts, every recipient's reply kept, in one
        transaction."""
        settled = list(settled)
        if not settled:
            return
        now = time.time()
        t = schema.outbound
        attempts = [
            dict(
                outbound_id=s.mail_id,
                attempt=s.attempt,
                connection=s.connection,
                at=now,
                recipient=r.recipient,
                outcome=r.outcome,
                code=r.code,
                text=r.text,
            )
            for s in settled
            for r in s.recipients
        ]
        pending = schema.outbound_pending
        async with self._tx() as conn:
            if attempts:
                await conn.execute(insert(schema.outbound_attempts), attempts)
            settled = [await _with_earlier_failures(conn, s) for s in settled]
            sent = [s.mail_id for s in settled if s.state == "sent" and s.note is None]
            if sent:
                await conn.execute(
                    update(t)
                    .where(t.c.id.in_(sent))
                    .values(
                        state="sent",
                        sent_at=now,
                        lease_until=None,
                        last_error=None,
                        next_attempt_at=schema.NEVER,
                    )
                )
            await record_receipts(conn, [_failure_receipt(s, now) for s in settled if s.receipt])
            final = [s.mail_id for s in settled if s.state != "deferred"]
            if final:  # nobody is left to deliver to
                await conn.execute(delete(pending).where(pending.c.outbound_id.in_(final)))
            for s in settled:
                if s.state == "sent" and s.note is None:
                    continue
                values: dict[str, Any] = dict(
                    state=s.state, lease_until=None, last_error=s.note, next_attempt_at=schema.NEVER
                )
                if s.state == "sent":
                    values["sent_at"] = now
                if s.state == "deferred":
                    values["next_attempt_at"] = s.retry_at or now
                await conn.execute(update(t).where(t.c.id == s.mail_id).values(**values))
                if s.state == "deferred" and s.pending:
                    await conn.execute(delete(pending).where(pending.c.outbound_id == s.mail_id))
                    await conn.execute(
                        insert(pending).values(
                            outbound_id=s.mail_id,
                            recipients=json.dumps(s.pending, ensure_ascii=False),
                        )
                    )

    async def outbound_data(self, message_id: str) -> bytes | None:
        """The bytes of a queued message, as they were handed to the queue."""
        b, t = schema.outbound_bodies, schema.outbound
        async with self.engine.connect() as conn:
            body = (
                await conn.execute(select(b.c.data).where(b.c.message_id == message_id))
            ).scalar()
            if body is None:
                body = (
                    await conn.execute(select(t.c.data).where(t.c.message_id == message_id))
                ).scalar()
        return bytes(body) if body is not None else None

    async def attempts(self, mail_id: int) -> list[dict[str, Any]]:
        """A message's delivery history, oldest first."""
        a = schema.outbound_attempts
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(a).where(a.c.outbound_id == mail_id).order_by(a.c.id))
            return [dict(r._mapping) for r in rows]

    # -- alarms --------------------------------------------------------------------------

    async def raise_alarm(self, key: str, text: str, severity: str = "critical") -> None:
        """Open an alarm for `key`, or count another occurrence of the open one."""
        t = schema.alarms
        now = time.time()
        async with self._tx() as conn:
            # Two nodes raising it at once must not open two alarms.
            await locks.advisory(conn, locks.ALARM, key)
            open_id = (
                await conn.execute(select(t.c.id).where(t.c.key == key, t.c.cleared_at.is_(None)))
            ).scalar()
            if open_id is None:
                await conn.execute(
                    insert(t).values(
                        key=key,
                        severity=severity,
                        text=text,
                        raised_at=now,
                        last_seen_at=now,
                        count=1,
                    )
                )
            else:
                await conn.execute(
                    update(t)
                    .where(t.c.id == open_id)
                    .values(
                        text=text,
                        last_seen_at=now,
                        count=t.c.count + 1,
                    )
                )

    async def clear_alarm(self, key: str) -> None:
        t = schema.alarms
        async with self._tx() as conn:
            # Not between another's finding the open alarm and counting it there.
            await locks.advisory(conn, locks.ALARM, key)
            await conn.execute(
                update(t)
                .where(t.c.key == key, t.c.cleared_at.is_(None))
                .values(cleared_at=time.time())
            )

    async def open_alarms(self) -> list[dict[str, Any]]:
        t = schema.alarms
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t).where(t.c.cleared_at.is_(None)).order_by(t.c.raised_at, t.c.id)
            )
            return [dict(r._mapping) for r in rows]

    # -- operators' changes ---------------------------------------------------------------

    async def set_pool_size(self, connection: str, size: int, who: str, configured: int) -> int:
        """Record a new pool size for a connection, and who asked; returns the old one."""
        t = schema.pool_sizes
        now = time.time()
        async with self._tx() as conn:
            # FOR UPDATE: a resize that runs beside this one reads the size this one set.
            row = (
                await conn.execute(
                    select(t.c.size, t.c.configured)
                    .where(t.c.connection == connection)
                    .with_for_update()
                )
            ).first()
            old = row.size if row is not None and row.configured == configured else configured
            stmt = locks.upsert(conn, t).values(
                connection=connection, size=size, set_at=now, configured=configured
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[t.c.connection],
                    set_={"size": size, "set_at": now, "configured": configured},
                )
            )
            await _audit(conn, who, "pool.resize", connection, f"pool size {old} -> {size}", now)
        return int(old)

    async def pool_size(self, connection: str, configured: int) -> int:
        """The size to run with: an operator's, unless the settings have changed since."""
        t = schema.pool_sizes
        query = select(t.c.size, t.c.configured).where(t.c.connection == connection)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return configured
        if row.configured == configured:
            return int(row.size)
        async with self._tx() as conn:
            # Only the node that removes the override says so, when several start at once.
            gone = await conn.execute(
                delete(t).where(t.c.connection == connection, t.c.configured == row.configured)
            )
            if not gone.rowcount:
                return configured
            detail = (
                f"pool size {row.size} -> {configured}: the settings changed from"
                f" {row.configured} to {configured}, and the settings win"
            )
            await _audit(conn, "settings", "pool.reset", connection, detail, time.time())
        return configured

    async def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        t = schema.audit
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t).order_by(t.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    # -- queries -------------------------------------------------------------------------

    async def replies_to(self, sender: str, since: float) -> int:
        """How many messages from this sender since then were answered."""
        async with self.engine.connect() as conn:
            return await _replies_to(conn, sender, since)

    async def outbound_states(self) -> dict[str, int]:
        t = schema.outbound
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(t.c.state, func.count()).group_by(t.c.state))
            return {state: n for state, n in rows}

    async def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """Every row of a table matching equality filters; for reports and tests."""
        t = schema.metadata.tables[table]
        query = select(t).order_by(*t.primary_key.columns)
        for column, value in where.items():
            query = query.where(t.c[column] == value)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]


def _sqlite_for_many_processes(engine: AsyncEngine) -> None:
    """Every actor is a process with its own connection: WAL lets readers run beside the
    writer, and BEGIN IMMEDIATE takes the write lock up front, so two writers wait for each
    other (busy_timeout) instead of failing when a read lock cannot be upgraded."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _check_epoch(conn: AsyncConnection, connection: str, epoch: int) -> None:
    # FOR SHARE: a fence() raising the epoch waits until this transaction ends, so nothing
    # written under the old epoch commits after the new one is in force.
    query = select(schema.fences.c.epoch).where(schema.fences.c.connection == connection)
    current = (await conn.execute(query.with_for_update(read=True))).scalar()
    if current is not None and current > epoch:
        raise Fenced(f"{connection}: epoch {epoch} is stale; {current} owns it now")


async def _fates(conn: AsyncConnection, keys: list[str], *, lock: bool = False) -> dict[str, Fate]:
    """The fates of those keys that have one; with lock, their rows stay locked (sorted, so
    two transactions take them in one order) until the transaction ends."""
    t = schema.inbound
    keys = sorted(set(keys))
    fates: dict[str, Fate] = {}
    for start in range(0, len(keys), 500):
        query = select(t.c.dedupe_key, t.c.state).where(
            t.c.dedupe_key.in_(keys[start : start + 500])
        )
        if lock:
            query = query.order_by(t.c.dedupe_key).with_for_update()
        fates.update({k: Fate(s) for k, s in await conn.execute(query)})
    return fates


async def _claim_new(
    conn: AsyncConnection, new: list[tuple[str, str, int]], now: float
) -> dict[str, Fate]:
    """Claim keys (key, connection, epoch) that had no row. Returns the fates of those that
    another transaction claimed meanwhile: they keep its row, locked now."""
    if not new:
        return {}
    t = schema.inbound
    rows = [
        dict(dedupe_key=k, connection=c, epoch=e, state=Fate.CLAIMED, claimed_at=now)
        for k, c, e in new
    ]
    stmt = locks.upsert(conn, t).on_conflict_do_nothing(index_elements=[t.c.dedupe_key])
    claimed = set((await conn.execute(stmt.returning(t.c.dedupe_key), rows)).scalars())
    return await _fates(conn, [k for k, _, _ in new if k not in claimed], lock=True)


async def _replies_to(conn: AsyncConnection, sender: str, since: float) -> int:
    c, t = schema.contacts, schema.outbound
    query = (
        select(func.count(func.distinct(c.c.dedupe_key)))
        .select_from(c.join(t, t.c.source_key == c.c.dedupe_key))
        .where(func.lower(c.c.sender) == sender.lower(), c.c.created_at >= since)
    )
    return int((await conn.execute(query)).scalar() or 0)


async def _within_limit(conn: AsyncConnection, o: Finished) -> Finished:
    """The outcome, without its replies if the sender has had all it may have."""
    limit = o.limit
    if limit is None or not o.outgoing:
        return o
    if await _replies_to(conn, limit.sender, limit.since) < limit.most:
        return o
    why = f"the limit of {limit.most} automatic replies a day to this sender is reached"
    contact = dataclasses.replace(o.contact, status="unanswerable", reason=why)
    return dataclasses.replace(o, contact=contact, outgoing=())


async def _record(conn: AsyncConnection, o: Finished, *, now: float) -> None:
    o = await _within_limit(conn, o)
    t = schema.inbound
    await conn.execute(
        update(t).where(t.c.dedupe_key == o.key).values(state=o.fate, done_at=now, raw=None)
    )
    await conn.execute(
        insert(schema.contacts).values(**_contact_row(o.contact), dedupe_key=o.key, created_at=now)
    )
    if o.outgoing:
        await _queue(conn, o.outgoing, o.key, now)
    if o.receipt is not None:
        await record_arrived(conn, o.receipt, o.key, now)
    if o.quarantine is not None:
        reason, raw = o.quarantine
        await conn.execute(
            insert(schema.quarantine).values(
                dedupe_key=o.key,
                connection=o.connection,
                reason=reason,
                raw=raw,
                created_at=now,
            )
        )


def _contact_row(c: Contact) -> dict[str, Any]:
    return dict(
        direction=c.direction,
        connection=c.connection,
        application=c.application,
        message_id=c.message_id,
        in_reply_to=c.in_reply_to,
        sender=c.sender,
        recipients=json.dumps(c.recipients, ensure_ascii=False),
        subject=c.subject,
        language=c.language,
        status=c.status,
        reason=c.reason,
        defects=json.dumps(c.defects, ensure_ascii=False),
    )


async def _with_earlier_failures(conn: AsyncConnection, s: Settled) -> Settled:
    """A message's note on its last attempt names every recipient it never reached, not
    only those of that attempt."""
    if s.attempt <= 1 or s.state == "deferred":
        return s
    a = schema.outbound_attempts
    rows = await conn.execute(
        select(a.c.recipient, a.c.code, a.c.text)
        .where(a.c.outbound_id == s.mail_id, a.c.outcome == "failed", a.c.attempt < s.attempt)
        .order_by(a.c.id)
    )
    earlier = [f"{r}: {'' if c is None else f'{c} '}{t}" for r, c, t in rows.all()]
    if not earlier:
        return s
    return dataclasses.replace(s, note="; ".join(filter(None, [*earlier, s.note])))


def _failure_receipt(s: Settled, now: float) -> dict[str, Any]:
    assert s.receipt is not None
    return receipt_row(
        s.receipt,
        source="smtp",
        source_key=f"smtp:{s.mail_id}:{s.attempt}",
        outbound_id=s.mail_id,
        message_id=s.message_id,
        application=s.application,
        state="pending",
        now=now,
    )


async def _audit(
    conn: AsyncConnection, who: str, action: str, subject: str, detail: str, at: float
) -> None:
    await conn.execute(
        insert(schema.audit).values(at=at, who=who, action=action, subject=subject, detail=detail)
    )


async def _queue(
    conn: AsyncConnection, outgoing: Iterable[Outgoing], source_key: str | None, now: float
) -> None:
    outgoing = list(outgoing)
    await conn.execute(
        insert(schema.outbound), [_outbound_row(o, source_key, now) for o in outgoing]
    )
    await conn.execute(
        insert(schema.outbound_bodies),
        [dict(message_id=o.message_id, data=o.data) for o in outgoing],
    )


def _outbound_row(o: Outgoing, source_key: str | None, now: float) -> dict[str, Any]:
    return dict(
        message_id=o.message_id,
        application=o.application,
        source_key=source_key,
        sender=o.sender,
        recipients=json.dumps(o.recipients, ensure_ascii=False),
        data=b"",
        smtputf8=int(o.smtputf8),
        state="queued",
        attempts=0,
        next_attempt_at=now,
        queued_at=now,
    )
