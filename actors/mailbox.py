"""What an inbound connection reads from: a mailbox on a server, or an SMTP spool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Ref:
    """A message on the server: its dedupe key, and the server's handle for it."""

    key: str
    handle: str


@dataclass(frozen=True, slots=True)
class Fetched:
    ref: Ref
    raw: bytes


class Mailbox(Protocol):
    async def open(self) -> None:
        """Connect and log in; raise on failure."""

    async def pending(self) -> list[Ref]:
        """Messages not yet settled on the server, oldest first, at most one batch."""

    async def fetch(self, refs: list[Ref]) -> list[Fetched]:
        """The raw bytes of these messages, without changing their state on the server."""

    async def settle(self, done: list[Ref], quarantined: list[Ref]) -> None:
        """Mark processed messages on the server (flag, move or delete)."""

    async def wait(self) -> None:
        """Return when new mail may have arrived; raise if the connection is dead."""

    async def reset(self) -> None:
        """Drop the connection after a failure; open() follows after a backoff."""

    async def close(self) -> None:
        """Log out for good, ignoring errors."""
