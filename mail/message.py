"""The parsed form of a message: plain data, safe to pickle and send between actors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address

    @property
    def usable(self) -> bool:
        """True when mail can be sent to it: a local part and a dotted or bracketed domain."""
        local, at, domain = self.address.rpartition("@")
        return bool(at and local and domain) and ("." in domain or domain.startswith("["))


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int
    sha256: str
    inline: bool


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    message_id: str | None
    subject: str
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    sender: tuple[Address, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    auto_submitted: str | None
    """Why this message is automatic and must never be answered (RFC 3834), or None."""
    kind: str = "normal"
    """normal | dsn | mdn | autoreply | feedback: a first cut; receipts refine it."""
    language: str | None = None
    defects: tuple[str, ...] = field(default=())
    fatal: str | None = None
    """Why this input cannot be handled as a message at all; None for anything readable."""
