"""Persistence: dedupe keys and fencing epochs, the outbound queue, receipts, contacts,
quarantine."""

from mailport.store.errors import described
from mailport.store.records import (
    Arrived,
    Contact,
    Fate,
    Fenced,
    Finished,
    Outgoing,
    QueuedMail,
    RecipientAttempt,
    ReplyLimit,
    Settled,
    StoredReceipt,
)
from mailport.store.store import Store

__all__ = [
    "Arrived",
    "Contact",
    "Fate",
    "Fenced",
    "Finished",
    "Outgoing",
    "QueuedMail",
    "RecipientAttempt",
    "ReplyLimit",
    "Settled",
    "Store",
    "StoredReceipt",
    "described",
]
