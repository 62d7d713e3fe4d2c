"""How the store keeps concurrent writers apart on PostgreSQL.

SQLite needs none of this: a transaction there begins with BEGIN IMMEDIATE and holds the
database's only write lock, so every read-then-write is alone. On PostgreSQL transactions
run side by side (READ COMMITTED), and each read-then-write takes a row lock, an upsert or
an advisory lock instead; these are the statements for that, in both dialects."""

from __future__ import annotations

import hashlib

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

# Advisory locks are named by two integers: what they guard, and which one (a hash).
SCHEMA = 1
"""The schema, while a node migrates it."""
ALARM = 2
"""One alarm key: its open alarm is counted or cleared by one writer at a time."""
SENDER = 3
"""One sender: the replies it has had are counted and added to by one writer at a time."""


def upsert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ON CONFLICT, which both dialects spell alike."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def advisory(conn: AsyncConnection, what: int, name: str) -> None:
    """Hold a lock on (what, name) until the transaction ends (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    which = int.from_bytes(digest, "big", signed=True)
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(:what, :which)"), {"what": what, "which": which}
    )
