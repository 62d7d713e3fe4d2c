"""Where an OutboundConnection delivers: an SMTP server through a pool of sessions, or a Maildir."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib

from mailport.actors.tls import client_context
from mailport.config.models import MaildirOutbound, Security, SmtpOutbound
from mailport.store import QueuedMail


@dataclass(frozen=True, slots=True)
class Result:
    """sent, deferred (try again later) or failed (permanently), with the server's words."""

    state: str
    detail: str | None = None
    refused: str | None = None
    """Sent, but not to every recipient: who was refused, and why."""
    connection_failed: bool = False
    """The connection failed (no session, a dropped session, 421), not this message."""

    @staticmethod
    def combine(results: list[Result]) -> Result:
        """One message sent as several transactions (a recipient limit): sent if any part
        was, with what the others met; else the least final of the outcomes."""
        if len(results) == 1:
            return results[0]
        sent = [r for r in results if r.state == "sent"]
        others = [r for r in results if r.state != "sent"]
        if sent and not others:
            refused = "; ".join(r.refused for r in sent if r.refused) or None
            return Result("sent", sent[0].detail, refused=refused)
        if sent:
            notes = [r.refused for r in sent if r.refused] + [r.detail or r.state for r in others]
            return Result("sent", sent[0].detail, refused="; ".join(n for n in notes if n))
        worst = next((r for r in others if r.state == "deferred"), others[0])
        return worst


class Transport(Protocol):
    async def deliver(self, mail: QueuedMail) -> Result: ...

    async def close(self) -> None: ...


class MaildirTransport:
    """Writes each message into path/new the Maildir way: tmp first, then an atomic rename."""

    def __init__(self, config: MaildirOutbound) -> None:
        self.root = config.path
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    async def deliver(self, mail: QueuedMail) -> Result:
        name = f"{time.time():.6f}.{uuid.uuid4().hex}.{socket.gethostname()}"
        envelope = f"Return-Path: <{mail.sender}>\r\n".encode()
        await asyncio.to_thread(self._write, name, envelope + mail.data)
        return Result("sent")

    def _write(self, name: str, data: bytes) -> None:
        tmp = self.root / "tmp" / name
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.root / "new" / name)

    async def close(self) -> None:
        pass


class RateLimit:
    """At most `per_minute` transactions a minute, spread evenly (a token bucket that
    refills continuously and holds one second's worth)."""

    def __init__(self, per_minute: int | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            self._next = max(self._next, now - 1.0)
            self._next += self.interval
            if self._next > now:
                await asyncio.sleep(self._next - now)


class SmtpPool:
    """N warm aiosmtplib sessions; a message borrows one for its transaction.

    The pool can be resized while it sends: growing adds sessions at once, shrinking
    retires sessions as they come back, so none is cut off in the middle of a message."""

    def __init__(self, config: SmtpOutbound) -> None:
        self.config = config
        self.size = 0
        self._retiring = 0
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        self._rate = RateLimit(config.max_per_minute)
        self.resize(config.pool_size)

    def resize(self, size: int) -> None:
        if size > self.size:
            cancelled = min(self._retiring, size - self.size)
            self._retiring -= cancelled
            for _ in range(size - self.size - cancelled):
                self._idle.put_nowait(None)  # a slot; it connects on first use
        elif size < self.size:
            self._retiring += self.size - size
            while self._retiring and not self._idle.empty():
                _close_quietly(self._idle.get_nowait())
                self._retiring -= 1
        self.size = size

    @property
    def sessions(self) -> int:
        """Sessions that exist now: a shrink takes effect as busy ones finish."""
        return self.size + self._retiring

    async def deliver(self, mail: QueuedMail) -> Result:
        limit = self.config.max_recipients
        chunks = [mail.recipients[i : i + limit] for i in range(0, len(mail.recipients), limit)]
        results = [await self._transaction(mail, chunk) for chunk in chunks]
        return Result.combine(results)

    async def _transaction(self, mail: QueuedMail, recipients: tuple[str, ...]) -> Result:
        session = await self._idle.get()
        try:
            if session is None or not session.is_connected:
                session = await self._connect()
            limit = session.esmtp_extensions.get("size", "")
            if limit.isdigit() and int(limit) and len(mail.data) > int(limit):
                return Result(
                    "failed",
                    f"552 5.3.4 message of {len(mail.data)} bytes is over "
                    f"the server's SIZE limit of {limit}",
                )
            await self._rate.take()
            options = ["SMTPUTF8"] if mail.smtputf8 else []
            refused, reply = await session.sendmail(
                mail.sender, list(recipients), mail.data, mail_options=options
            )
            if refused:
                detail = "; ".join(f"{r}: {code} {text}" for r, (code, text) in refused.items())
                return Result("sent", reply, refused=f"some recipients refused: {detail}")
            return Result("sent", reply)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            detail = "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in exc.recipients)
            return Result("deferred" if all(400 <= c < 500 for c in codes) else "failed", detail)
        except aiosmtplib.SMTPResponseException as exc:
            _close_quietly(session)
            session = None
            state = "failed" if 500 <= exc.code < 600 else "deferred"
            # 421 is the server closing the session: a fault of the connection, not the mail.
            return Result(state, f"{exc.code} {exc.message}", connection_failed=exc.code == 421)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            _close_quietly(session)
            session = None
            return Result("deferred", f"{type(exc).__name__}: {exc}", connection_failed=True)
        finally:
            if self._retiring:
                self._retiring -= 1
                _close_quietly(session)
            else:
                self._idle.put_nowait(session)

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        context = client_context(cfg.verify_certificate, cfg.ca_file)
        session = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            timeout=cfg.timeout,
            use_tls=cfg.security is Security.TLS,
            start_tls=cfg.security is Security.STARTTLS,
            tls_context=context,
            local_hostname=cfg.helo_name,
        )
        await session.connect()
        if cfg.username is not None and cfg.password is not None:
            await session.login(cfg.username, cfg.password.resolve().get_secret_value())
        return session

    async def close(self) -> None:
        while not self._idle.empty():
            _close_quietly(self._idle.get_nowait())


def _close_quietly(session: aiosmtplib.SMTP | None) -> None:
    if session is not None:
        session.close()


def transport_for(config: SmtpOutbound | MaildirOutbound) -> Transport:
    if isinstance(config, MaildirOutbound):
        return MaildirTransport(config)
    return SmtpPool(config)
