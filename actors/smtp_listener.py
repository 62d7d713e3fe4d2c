"""MX mode: accept mail over SMTP (aiosmtpd) and answer 250 only once it is spooled in the store."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailport.actors.mailbox import Fetched, Ref
from mailport.config.models import SmtpListenerInbound
from mailport.store import Fenced

log = logging.getLogger(__name__)
Spool = Callable[[str, bytes], Awaitable[None]]
Spooled = Callable[[], Awaitable[list[tuple[str, bytes]]]]


class _Handler:
    def __init__(self, listener: SmtpListenerMailbox) -> None:
        self.listener = listener

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        # aiosmtpd gives the null reverse-path of a bounce as the text "<>".
        sender = "" if envelope.mail_from in (None, "", "<>") else envelope.mail_from
        trace = (
            f"Return-Path: <{sender}>\r\n"
            f"Received: from {session.host_name or 'unknown'} ({_peer_address(session)})\r\n"
            f"\tby {server.hostname} (mailport) with ESMTP;\r\n"
            f"\t{email.utils.formatdate()}\r\n"
        ).encode("utf-8", "surrogateescape")
        try:
            await self.listener.accept(trace + content)
        except Exception as exc:  # the sender keeps the message and retries: nothing is lost
            log.warning(
                "%s: cannot spool: %s: %s", self.listener.config.name, type(exc).__name__, exc
            )
            return "451 4.3.0 Temporary failure storing the message, try again later"
        return "250 2.0.0 OK queued"


def _peer_address(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class SmtpListenerMailbox:
    def __init__(self, config: SmtpListenerInbound, spool: Spool, spooled: Spooled) -> None:
        self.config = config
        self._spool = spool
        self._spooled = spooled
        self._arrived = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._raw: dict[str, bytes] = {}
        self.fenced: Fenced | None = None

    async def open(self) -> None:
        if self._server is not None:
            return
        cfg = self.config
        loop = asyncio.get_running_loop()
        handler = _Handler(self)

        def factory() -> Any:
            return SMTP(
                handler,
                data_size_limit=cfg.max_message_size,
                hostname=socket.getfqdn(),
                ident="mailport ESMTP",
            )

        self._server = await loop.create_server(factory, cfg.host, cfg.port, reuse_address=True)
        # Mail spooled before a crash is processed first.
        for key, raw in await self._spooled():
            self._raw[key] = raw

    async def accept(self, raw: bytes) -> None:
        key = f"{self.config.name}:smtp:{uuid.uuid4().hex}"
        try:
            await self._spool(key, raw)
        except Fenced as exc:  # another node owns this listener now: stop, loudly
            self.fenced = exc
            self._arrived.set()
            raise
        self._raw[key] = raw
        self._arrived.set()

    async def pending(self) -> list[Ref]:
        return [Ref(key, key) for key in list(self._raw)[:100]]

    async def fetch(self, refs: list[Ref]) -> list[Fetched]:
        return [Fetched(r, self._raw[r.key]) for r in refs if r.key in self._raw]

    async def settle(self, done: list[Ref], quarantined: list[Ref]) -> None:
        for ref in done + quarantined:
            self._raw.pop(ref.key, None)

    async def wait(self) -> None:
        if self.fenced is not None:
            raise self.fenced
        self._arrived.clear()
        if not self._raw:
            await self._arrived.wait()
        else:
            await asyncio.sleep(1.0)  # unsettled mail: a router failed; retry it soon

    async def reset(self) -> None:
        pass  # keep listening: what is spooled is safe, and senders must not be refused

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
