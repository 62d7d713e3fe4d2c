"""Plain records that cross the store's boundary."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailport.mail.receipts import Receipt


class Fate(StrEnum):
    """What became of an inbound message, as the store and the server see it."""

    CLAIMED = "claimed"
    DONE = "done"
    QUARANTINED = "quarantined"

    @property
    def finished(self) -> bool:
        return self is not Fate.CLAIMED


@dataclass(frozen=True, slots=True)
class Contact:
    direction: str
    connection: str | None
    application: str | None
    message_id: str | None
    sender: str | None
    recipients: tuple[str, ...]
    subject: str
    status: str
    reason: str | None = None
    in_reply_to: str | None = None
    language: str | None = None
    defects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A rendered message ready to queue."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    smtputf8: bool
    application: str | None


@dataclass(frozen=True, slots=True)
class Finished:
    """The outcome of processing one inbound message, written in one transaction."""

    connection: str
    epoch: int
    key: str
    fate: Fate
    contact: Contact
    outgoing: tuple[Outgoing, ...] = ()
    quarantine: tuple[str, bytes] | None = None
    """The reason, and the message's bytes, when it is quarantined."""
    receipt: Arrived | None = None
    """When the message is a receipt for mail we sent: what it says, and which mail."""
    limit: ReplyLimit | None = None
    """For automatic replies: how many the sender may have had; checked in the transaction
    that queues them, so shards working at once cannot both slip past it."""


@dataclass(frozen=True, slots=True)
class ReplyLimit:
    sender: str
    most: int
    since: float


@dataclass(frozen=True, slots=True)
class Arrived:
    """A receipt that came by mail, and the outbound message it answers (None: orphaned)."""

    receipt: Receipt
    outbound_id: int | None
    message_id: str | None
    application: str | None


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: int
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    smtputf8: bool
    attempts: int
    application: str | None
    queued_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RecipientAttempt:
    recipient: str
    outcome: str
    """sent | deferred | failed"""
    code: int | None
    """The server's reply code; None when no server answered."""
    text: str


@dataclass(frozen=True, slots=True)
class Settled:
    """What one delivery attempt of one message came to."""

    mail_id: int
    attempt: int
    connection: str
    state: str
    """sent (to every recipient that will ever get it) | deferred | failed"""
    recipients: tuple[RecipientAttempt, ...]
    note: str | None = None
    retry_at: float | None = None
    pending: tuple[str, ...] = ()
    """For deferred mail: the recipients still to deliver to."""
    receipt: Receipt | None = None
    """For recipients that failed on this attempt: the failure, for the application."""
    message_id: str | None = None
    application: str | None = None


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """A receipt as the store keeps it, with the message it answers."""

    id: int
    source: str
    outbound_id: int | None
    message_id: str | None
    application: str | None
    receipt: Receipt
    received_at: float
    state: str
    error: str | None = None


class Fenced(Exception):
    """A newer epoch owns this connection; the caller must stop processing its mail."""
