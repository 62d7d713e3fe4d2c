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
class Parts:
    """The MIME tree in depth-first order, as indexes into `types`."""

    types: tuple[str | None, ...] = ()
    """Each part's declared media type, containers included; None where it declares none."""
    parents: tuple[int | None, ...] = ()
    """Each part's container; None for the message itself."""
    text_body: tuple[int, ...] = ()
    html_body: tuple[int, ...] = ()
    attachments: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Charset:
    """How one decoded text was read: the part it came from, the charset it declared and
    the one it was decoded with (they differ when the label was wrong or missing)."""

    part: int
    declared: str | None
    used: str


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
    parts: Parts = field(default_factory=Parts)
    charsets: tuple[Charset, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    """Every header field in order, as (name, decoded and unfolded value)."""
    defects: tuple[str, ...] = field(default=())
    fatal: str | None = None
    """Why this input cannot be handled as a message at all; None for anything readable."""
