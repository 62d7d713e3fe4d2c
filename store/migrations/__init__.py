"""Schema migrations (Alembic): a Store brings its database to the newest revision as it
opens it, so nodes of a new release migrate a shared database at start-up.

A new revision goes in versions/. To draft one from a change to schema.py, write an
alembic.ini with ``script_location = mailport.store:migrations`` and ``sqlalchemy.url``
naming a database at the current head, run ``alembic revision --autogenerate -m WHAT``,
and read what it wrote before keeping it."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text

from mailport.store import locks

__all__ = ["INITIAL", "one_at_a_time", "upgrade"]

INITIAL = "0001"
"""The first revision: the schema as create_all made it before there were migrations."""

# The tables create_all made before there were migrations, which INITIAL creates.
_BEFORE_MIGRATIONS = frozenset(
    {
        "alarms",
        "audit",
        "contacts",
        "fences",
        "inbound",
        "outbound",
        "outbound_attempts",
        "outbound_bodies",
        "outbound_pending",
        "pool_sizes",
        "quarantine",
        "receipts",
    }
)

_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
_turns = weakref.WeakKeyDictionary()


def one_at_a_time() -> asyncio.Lock:
    """Held around upgrade() by stores opening in one process: Alembic keeps the migration
    it runs in module globals, which a second one running beside it would overwrite. Take
    it before the transaction, or a SQLite store would wait for the file lock holding it."""
    loop = asyncio.get_running_loop()
    return _turns.setdefault(loop, asyncio.Lock())


def upgrade(conn: Connection) -> None:
    """Bring the database `conn` is on to the newest revision, in the transaction `conn`
    is in: the caller commits it. Safe while other processes open the same database."""
    if conn.dialect.name == "postgresql":
        # Nodes starting together: one migrates, the others wait here until it commits,
        # then find nothing to do. Released with the transaction.
        conn.execute(text("SELECT pg_advisory_xact_lock(:what, 0)"), {"what": locks.SCHEMA})
    # On SQLite the transaction began with BEGIN IMMEDIATE: it holds the database file's
    # write lock, and the next process waits for it (busy_timeout).
    config = _config(conn)
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" not in tables and tables & _BEFORE_MIGRATIONS:
        _adopt(config, tables)
    command.upgrade(config, "head")


def _adopt(config: Config, tables: set[str]) -> None:
    """A database made by create_all before there were migrations has INITIAL's schema
    but no record of it: record it, so that only later revisions run."""
    missing = sorted(_BEFORE_MIGRATIONS - tables)
    if missing:
        raise RuntimeError(
            "the database has mailport tables but no migration history, and lacks "
            f"{', '.join(missing)}: it was made by an older build than migrations can "
            "adopt; move it aside and start a new one"
        )
    command.stamp(config, INITIAL)


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    return config
