"""What a receipt says, recipient by recipient."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    recipient: str
    action: str
    """failed | delayed | delivered | relayed | expanded"""
    status: str
    """The enhanced status code (RFC 3463), such as 5.1.1; empty when none is known."""
    reply_code: int | None
    reason: str
    """One of REASONS."""
    hard_bounce: bool
    diagnostic: str
    remote_mta: str


@dataclass(frozen=True, slots=True)
class Receipt:
    kind: str
    """dsn | mdn | autoreply | feedback | normal"""
    original_message_id: str | None = None
    envelope_id: str | None = None
    recipients: tuple[RecipientStatus, ...] = ()
    disposition: str | None = None
    """For an MDN: displayed, deleted, dispatched, processed, …"""
    feedback_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        recipients = tuple(RecipientStatus(**r) for r in data.get("recipients", ()))
        return cls(**{**data, "recipients": recipients})
