"""Tables. Times are UTC seconds since the epoch, so ordering is exact on every backend.

This is the description of the schema; a database gets it through the migrations in
migrations/versions, and a change here needs a new revision there."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.types import TypeEngine

# Row ids: 64 bits on PostgreSQL (BIGSERIAL), where a busy cluster can pass 2**31 attempts
# or contacts; on SQLite INTEGER, the only type an autoincrementing rowid can have.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Said(TypeDecorator[str]):
    """Text from outside (a message's headers, a server's reply), stored as PostgreSQL can
    hold it: without NUL characters, which its text cannot contain, and cut to the column's
    length, which it enforces where SQLite does not."""

    impl: TypeEngine[Any] | type[TypeEngine[Any]] = Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length
        self.impl = String(length) if length else Text()

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        words = str(value).replace("\x00", "")
        return words[: self.length] if self.length else words


metadata = MetaData()

NEVER = 1e18  # a next_attempt_at that never comes

fences = Table(
    "fences",
    metadata,
    Column("connection", String(64), primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)

# One row per inbound message ever seen: the dedupe key and its fate.
inbound = Table(
    "inbound",
    metadata,
    Column("dedupe_key", String(512), primary_key=True),
    Column("connection", String(64), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # claimed | done | quarantined
    Column("raw", LargeBinary),  # kept for SMTP-spooled mail until done
    Column("claimed_at", Float, nullable=False),
    Column("done_at", Float),
    Index("ix_inbound_connection_state", "connection", "state"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("direction", String(3), nullable=False),  # in | out
    Column("connection", String(64)),
    Column("application", String(64)),
    Column("dedupe_key", String(512)),
    Column("message_id", Said(998)),
    Column("in_reply_to", Said(998)),
    Column("sender", Said(998)),
    Column("recipients", Text),
    Column("subject", Said()),
    Column("language", String(16)),
    Column("status", String(16), nullable=False),  # handled | unanswerable | quarantined
    Column("reason", Said()),
    Column("defects", Text),
    Column("created_at", Float, nullable=False),
    Index("ix_contacts_message_id", "message_id"),
)

outbound = Table(
    "outbound",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(998), nullable=False, unique=True),
    Column("application", String(64)),
    Column("source_key", String(512)),  # the inbound message this answers, if any
    Column("sender", String(998), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list
    # Empty for new rows: the bytes live in outbound_bodies, so that the state changes of
    # a send rewrite a small row, not the message (SQLite rewrites a whole record).
    Column("data", LargeBinary, nullable=False),
    Column("smtputf8", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),  # queued | sending | sent | deferred | failed
    Column("connection", String(64)),
    Column("attempts", Integer, nullable=False, default=0),
    # When the row next needs a connection: now when queued, the retry time when deferred,
    # the lease's end when sending, and never (NEVER) when sent or failed; so due mail is
    # one range of one index.
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("last_error", Said()),
    Column("queued_at", Float, nullable=False),
    Column("sent_at", Float),
    Index("ix_outbound_next", "next_attempt_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(512), nullable=False, unique=True),
    Column("connection", String(64), nullable=False),
    Column("reason", Said(), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Conditions an operator must act on. One row per raising; clearing closes it.
alarms = Table(
    "alarms",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(256), nullable=False),  # what it is about, e.g. "inbound:support"
    Column("severity", String(16), nullable=False),  # warning | critical
    Column("text", Said(), nullable=False),
    Column("raised_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("count", Integer, nullable=False, default=1),
    Column("cleared_at", Float),
    Index("ix_alarms_key_open", "key", "cleared_at"),
)

# What operators changed while the system ran: who, what, when.
audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("who", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("detail", Text, nullable=False),
)

# Pool sizes set while running. One overrides the configured size for as long as the
# configuration says what it said when the override was made.
pool_sizes = Table(
    "pool_sizes",
    metadata,
    Column("connection", String(128), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("set_at", Float, nullable=False),
    Column("configured", Integer, nullable=False),
)

# Every delivery attempt, one row a recipient: the server's code and words, and which
# connection tried.
outbound_attempts = Table(
    "outbound_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbound_id", Id, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("connection", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("recipient", Said(998), nullable=False),
    Column("outcome", String(16), nullable=False),  # sent | deferred | failed
    Column("code", Integer),
    Column("text", Said(), nullable=False),
    Index("ix_outbound_attempts_outbound", "outbound_id"),
)

# The recipients still to deliver to, when a message was sent to only some of them.
outbound_pending = Table(
    "outbound_pending",
    metadata,
    Column("outbound_id", Id, primary_key=True),
    Column("recipients", Text, nullable=False),  # JSON list
)

# The bytes of each queued message, written once.
outbound_bodies = Table(
    "outbound_bodies",
    metadata,
    Column("message_id", String(998), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# What came back for mail we sent: a refusal by the server we handed it to, a DSN, an MDN,
# an auto-reply. Each is handed once to the receipt handler of the application that sent
# the message; one that matches nothing we sent is kept as orphaned.
receipts = Table(
    "receipts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source_key", String(512), nullable=False, unique=True),
    Column("source", String(8), nullable=False),  # smtp (our session's reply) | mail
    Column("kind", String(16), nullable=False),  # dsn | mdn | autoreply
    Column("outbound_id", Id),
    Column("message_id", Said(998)),  # of the message it answers
    Column("application", String(64)),
    Column("data", Text, nullable=False),  # JSON of the Receipt
    Column("received_at", Float, nullable=False),
    # pending | handled | no handler | failed (the handler raised) | orphaned
    Column("state", String(16), nullable=False),
    Column("lease_until", Float),
    Column("handled_at", Float),
    Column("error", Said()),
    Index("ix_receipts_state", "state"),
    Index("ix_receipts_outbound", "outbound_id"),
)
