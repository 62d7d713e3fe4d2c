"""Where an OutboundConnection delivers: an SMTP server through a pool of sessions, or a Maildir."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from mailport.actors.smtp_client import NothingSent, Sent, SmtpError, SmtpSession, xtext
from mailport.actors.tls import client_context
from mailport.config.handlers import resolve
from mailport.config.models import MaildirOutbound, Security, SmtpOutbound
from mailport.mail.receipts.correlation import envelope_tag, verp_sender
from mailport.store import QueuedMail


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server said about one recipient; code None when no server answered."""

    recipient: str
    code: int | None
    text: str
    command: str = ""
    """The SMTP command the reply answered (MAIL, RCPT, DATA); empty when unknown."""


@dataclass(frozen=True, slots=True)
class Result:
    """One delivery attempt: the server's reply for every recipient."""

    replies: tuple[Reply, ...]
    connection_failed: bool = False
    """The connection failed (no session, a dropped session, 421), not this message."""

    @staticmethod
    def every(recipients: tuple[str, ...], code: int | None, text: str, **kw: bool) -> Result:
        return Result(tuple(Reply(r, code, text) for r in recipients), **kw)

    @staticmethod
    def combine(results: list[Result]) -> Result:
        """One message sent as several transactions (a recipient limit)."""
        if len(results) == 1:
            return results[0]
        return Result(
            tuple(r for result in results for r in result.replies),
            connection_failed=all(r.connection_failed for r in results),
        )


class Transport(Protocol):
    async def deliver(self, mail: QueuedMail) -> Result: ...

    async def probe(self) -> str | None:
        """Why the destination cannot take mail now, or None when it can."""
        ...

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
        return Result.every(mail.recipients, 250, f"written to {self.root / 'new' / name}")

    def _write(self, name: str, data: bytes) -> None:
        tmp = self.root / "tmp" / name
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.root / "new" / name)

    async def probe(self) -> str | None:
        return None if os.access(self.root / "new", os.W_OK) else f"{self.root} is not writable"

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
    """N warm SMTP sessions; a message borrows one for its transaction.

    The pool can be resized while it sends: growing adds sessions at once, shrinking
    retires sessions as they come back, so none is cut off in the middle of a message."""

    def __init__(self, config: SmtpOutbound) -> None:
        self.config = config
        self.size = 0
        self._retiring = 0
        self._idle: asyncio.Queue[SmtpSession | None] = asyncio.Queue()
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
            fresh = session is None or not session.connected
            if session is None or fresh:
                session = await self._connect()
            limit = session.extensions.get("size", "")
            if limit.isdigit() and int(limit) and len(mail.data) > int(limit):
                text = (
                    f"5.3.4 message of {len(mail.data)} bytes is over the server's SIZE"
                    f" limit of {limit} (not sent)"
                )
                return Result.every(recipients, 552, text)
            await self._rate.take()
            try:
                sent = await self._send(session, mail, recipients)
            except NothingSent:
                if fresh:
                    raise
                # A warm session the server had closed: once more, on a new one.
                _close_quietly(session)
                session = None
                session = await self._connect()
                sent = await self._send(session, mail, recipients)
            commands = sent.commands or ("",) * len(recipients)
            replies = tuple(
                Reply(r, reply.code, reply.text, command)
                for r, reply, command in zip(recipients, sent.replies, commands, strict=True)
            )
            # 421 is the server closing the session: a fault of the connection, not the mail.
            return Result(replies, connection_failed=any(r.code == 421 for r in replies))
        except (SmtpError, OSError, TimeoutError) as exc:
            _close_quietly(session)
            session = None
            code = exc.code if isinstance(exc, SmtpError) else None
            text = str(exc) or type(exc).__name__
            if not isinstance(exc, SmtpError):
                text = f"{type(exc).__name__}: {exc}"
            if code is not None and 500 <= code < 600:
                # Refused before any mail (AUTH 535, say): no message could pass, so it is
                # the connection that fails; the mail waits for a working one.
                code = None
            return Result.every(recipients, code, text, connection_failed=True)
        finally:
            if self._retiring:
                self._retiring -= 1
                _close_quietly(session)
            else:
                self._idle.put_nowait(session)

    async def _send(
        self, session: SmtpSession, mail: QueuedMail, recipients: tuple[str, ...]
    ) -> Sent:
        dsn = self._dsn(session, mail)
        sender = verp_sender(mail.sender, mail.id) if self.config.verp else mail.sender
        return await session.send(sender, recipients, mail.data, smtputf8=mail.smtputf8, **dsn)

    def _dsn(self, session: SmtpSession, mail: QueuedMail) -> dict[str, Any]:
        """DSN parameters, where asked for and the server offers DSN (RFC 3461)."""
        request = self.config.dsn
        if request is None or "dsn" not in session.extensions:
            return {}
        notify = request.notify if isinstance(request.notify, str) else ",".join(request.notify)
        return {
            "mail_options": [f"RET={request.ret}", f"ENVID={xtext(envelope_id(mail.id))}"],
            "rcpt_options": [f"NOTIFY={notify}"],
            "orcpt": True,
        }

    async def _connect(self) -> SmtpSession:
        cfg = self.config
        session = SmtpSession(
            host=cfg.host,
            port=cfg.port,
            timeout=cfg.timeout,
            tls=client_context(cfg.verify_certificate, cfg.ca_file)
            if cfg.security in (Security.TLS, Security.STARTTLS)
            else None,
            starttls=cfg.security is Security.STARTTLS,
            helo_name=cfg.helo_name or socket.getfqdn(),
        )
        try:
            await session.connect()
            if cfg.username is not None:
                secret = await self._secret()
                mechanism = cfg.auth_mechanism or ("XOAUTH2" if cfg.token_provider else None)
                await session.login(cfg.username, secret, mechanism)
        except BaseException:
            session.close()
            raise
        return session

    async def probe(self) -> str | None:
        """A session that connects, greets and logs in, then leaves."""
        try:
            session = await self._connect()
        except (SmtpError, OSError, TimeoutError) as exc:
            return str(exc) if isinstance(exc, SmtpError) else f"{type(exc).__name__}: {exc}"
        await session.quit()
        return None

    async def _secret(self) -> str:
        cfg = self.config
        if cfg.token_provider is not None:
            try:
                token = resolve(cfg.token_provider)(cfg.name)
                if inspect.isawaitable(token):
                    token = await token
                return str(token)
            except Exception as exc:
                raise SmtpError(None, f"the OAuth2 token provider failed: {exc!r}") from exc
        assert cfg.password is not None
        return cfg.password.resolve().get_secret_value()

    async def close(self) -> None:
        while not self._idle.empty():
            session = self._idle.get_nowait()
            if session is not None:
                await session.quit()


def envelope_id(mail_id: int) -> str:
    """The ENVID a DSN brings back, naming the queued message it reports on."""
    return envelope_tag(mail_id)


def _close_quietly(session: SmtpSession | None) -> None:
    if session is not None:
        session.close()


def transport_for(config: SmtpOutbound | MaildirOutbound) -> Transport:
    if isinstance(config, MaildirOutbound):
        return MaildirTransport(config)
    return SmtpPool(config)
