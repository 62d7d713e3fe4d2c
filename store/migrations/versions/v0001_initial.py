"""The schema as it stood when migrations began: dedupe keys and fences, contacts, the
outbound queue with its bodies, attempts and pending recipients, quarantine, alarms, the
audit log, pool sizes and receipts.

Revision 0001, the first. On SQLite its tables are exactly those create_all made before,
so such a database is stamped with it rather than migrated."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here, not imported from schema.py: a revision must keep saying what it did.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "fences",
        sa.Column("connection", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "inbound",
        sa.Column("dedupe_key", sa.String(512), primary_key=True),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("raw", sa.LargeBinary()),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("done_at", sa.Float()),
    )
    op.create_index("ix_inbound_connection_state", "inbound", ["connection", "state"])
    op.create_table(
        "contacts",
        _id(),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("connection", sa.String(64)),
        sa.Column("application", sa.String(64)),
        sa.Column("dedupe_key", sa.String(512)),
        sa.Column("message_id", sa.String(998)),
        sa.Column("in_reply_to", sa.String(998)),
        sa.Column("sender", sa.String(998)),
        sa.Column("recipients", sa.Text()),
        sa.Column("subject", sa.Text()),
        sa.Column("language", sa.String(16)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("defects", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_contacts_message_id", "contacts", ["message_id"])
    op.create_table(
        "outbound",
        _id(),
        sa.Column("message_id", sa.String(998), nullable=False, unique=True),
        sa.Column("application", sa.String(64)),
        sa.Column("source_key", sa.String(512)),
        sa.Column("sender", sa.String(998), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("smtputf8", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("connection", sa.String(64)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float()),
        sa.Column("last_error", sa.Text()),
        sa.Column("queued_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float()),
    )
    op.create_index("ix_outbound_next", "outbound", ["next_attempt_at"])
    op.create_table(
        "quarantine",
        _id(),
        sa.Column("dedupe_key", sa.String(512), nullable=False, unique=True),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "alarms",
        _id(),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("cleared_at", sa.Float()),
    )
    op.create_index("ix_alarms_key_open", "alarms", ["key", "cleared_at"])
    op.create_table(
        "audit",
        _id(),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("who", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_table(
        "pool_sizes",
        sa.Column("connection", sa.String(128), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.Float(), nullable=False),
        sa.Column("configured", sa.Integer(), nullable=False),
    )
    op.create_table(
        "outbound_attempts",
        _id(),
        sa.Column("outbound_id", _ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("recipient", sa.String(998), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("code", sa.Integer()),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_index("ix_outbound_attempts_outbound", "outbound_attempts", ["outbound_id"])
    op.create_table(
        "outbound_pending",
        sa.Column("outbound_id", _ID, primary_key=True),
        sa.Column("recipients", sa.Text(), nullable=False),
    )
    op.create_table(
        "outbound_bodies",
        sa.Column("message_id", sa.String(998), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "receipts",
        _id(),
        sa.Column("source_key", sa.String(512), nullable=False, unique=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outbound_id", _ID),
        sa.Column("message_id", sa.String(998)),
        sa.Column("application", sa.String(64)),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease_until", sa.Float()),
        sa.Column("handled_at", sa.Float()),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_receipts_state", "receipts", ["state"])
    op.create_index("ix_receipts_outbound", "receipts", ["outbound_id"])


def downgrade() -> None:
    for table in (
        "receipts",
        "outbound_bodies",
        "outbound_pending",
        "outbound_attempts",
        "pool_sizes",
        "audit",
        "alarms",
        "quarantine",
        "outbound",
        "contacts",
        "inbound",
        "fences",
    ):
        op.drop_table(table)
