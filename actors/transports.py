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


class SmtpPool:
    """N warm aiosmtplib sessions; a message borrows one for its transaction."""

    def __init__(self, config: SmtpOutbound) -> None:
        self.config = config
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(config.pool_size):
            self._idle.put_nowait(None)  # a slot; it connects on first use

    async def deliver(self, mail: QueuedMail) -> Result:
        session = await self._idle.get()
        try:
            if session is None or not session.is_connected:
                session = await self._connect()
            options = ["SMTPUTF8"] if mail.smtputf8 else []
            refused, reply = await session.sendmail(
                mail.sender, list(mail.recipients), mail.data, mail_options=options
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
            return Result(state, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            _close_quietly(session)
            session = None
            return Result("deferred", f"{type(exc).__name__}: {exc}")
        finally:
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
