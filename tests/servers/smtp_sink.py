"""An in-process SMTP sink (aiosmtpd in a background thread) that records every message."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .tls import TlsFiles

__all__ = ["Received", "SmtpSink"]

RcptReply = Callable[[str], str | None]

# RFC 3461 parameters, accepted (and echoed in Received) when the sink offers DSN.
_DSN_PARAMS = frozenset({"RET", "ENVID", "NOTIFY", "ORCPT"})


@dataclass(frozen=True)
class Received:
    """One message accepted by the sink.

    ``mail_options`` are the MAIL FROM parameters; ``rcpt_options`` holds one tuple of
    RCPT TO parameters per accepted recipient, in the order of ``rcpt_tos``. Both keep
    the case the client sent.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[tuple[str, ...], ...] = ()
    auth_login: str | None = None
    tls: bool = False


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP, remembering raw MAIL/RCPT parameters and optionally taking DSN ones."""

    def __init__(self, *args: Any, dsn: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dsn = dsn
        self.raw_params: list[str] = []

    def _remember(self, arg: str | None, keyword: str) -> None:
        """Store the parameters of a MAIL/RCPT argument with their original case."""
        self.raw_params = []
        if arg is None:
            return
        stripped = self._strip_command_keyword(keyword, arg)
        if stripped is None:
            return
        _, params = self._getaddr(stripped)
        self.raw_params = (params or "").split()

    def _getparams(self, params: Any) -> Any:
        """Parse parameters; DSN parameters are swallowed when DSN is offered."""
        result = super()._getparams(params)
        if result is not None and self.dsn:
            for key in _DSN_PARAMS:
                result.pop(key, None)
        return result

    async def smtp_MAIL(self, arg: str | None) -> None:
        """Handle MAIL FROM, remembering its raw parameters."""
        self._remember(arg, "FROM:")
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        """Handle RCPT TO, remembering its raw parameters."""
        self._remember(arg, "TO:")
        await super().smtp_RCPT(arg)


class _Handler:
    """aiosmtpd handler that feeds accepted messages to the sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self,
        server: _SinkSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise DSN (if enabled) before the final EHLO line."""
        session.host_name = hostname
        if server.dsn:
            responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """XOAUTH2 (Google's SASL mechanism): accept the sink's token for its user."""
        token = self.sink.xoauth2
        try:
            fields = base64.b64decode(args[1]).decode().split("\x01")
            user = fields[0].removeprefix("user=")
            bearer = fields[1].removeprefix("auth=Bearer ")
        except (IndexError, ValueError):
            return AuthResult(success=False, handled=False)
        if token is None or (user, bearer) != token:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), bearer.encode()))

    async def handle_MAIL(
        self,
        server: _SinkSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Accept the sender, keeping the parameters as sent."""
        envelope.mail_from = address
        envelope.mail_options.extend(server.raw_params)
        envelope.sink_rcpt_options = []  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_RCPT(
        self,
        server: _SinkSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept the recipient unless the sink's ``rcpt_reply`` hook refuses it."""
        if self.sink.rcpt_reply is not None:
            reply = self.sink.rcpt_reply(address)
            if reply is not None:
                return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(server.raw_params)
        per_rcpt = getattr(envelope, "sink_rcpt_options", None)
        if per_rcpt is None:
            per_rcpt = envelope.sink_rcpt_options = []  # type: ignore[attr-defined]
        per_rcpt.append(tuple(server.raw_params))
        return "250 OK"

    async def handle_DATA(self, server: _SinkSMTP, session: Session, envelope: Envelope) -> str:
        """Record the message, or drop the connection without a reply when told to."""
        if self.sink.drop_data is not None and self.sink.drop_data(envelope):
            assert server.transport is not None
            server.transport.abort()
            return "421 4.4.2 dropped"  # written nowhere: the connection is gone
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        data = envelope.original_content
        if data is None:
            content = envelope.content or b""
            data = content.encode("utf-8") if isinstance(content, str) else content
        self.sink._record(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(getattr(envelope, "sink_rcpt_options", ())),
                auth_login=login,
                tls=session.ssl is not None,
            )
        )
        return "250 2.0.0 OK queued"


class _Controller(Controller):
    """Controller binding port 0 (no race for a free port) and building :class:`_SinkSMTP`."""

    def __init__(self, handler: _Handler, *, dsn: bool, port: int = 0, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)
        self._dsn = dsn

    def factory(self) -> SMTP:
        """Create the per-connection protocol."""
        return _SinkSMTP(self.handler, dsn=self._dsn, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        """Listen on an ephemeral port and publish it as ``self.port``."""

        async def create() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


class SmtpSink:
    """An SMTP server on 127.0.0.1 that accepts (or refuses) and records every message."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        tls: TlsFiles | None = None,
        auth: tuple[str, str] | None = None,
        rcpt_reply: RcptReply | None = None,
        dsn: bool = False,
        drop_data: Callable[[Envelope], bool] | None = None,
        xoauth2: tuple[str, str] | None = None,
        port: int = 0,
    ) -> None:
        """Configure the sink; call :meth:`start` (or use :meth:`SmtpSink.start`) to run it.

        tls: offer STARTTLS with this certificate (not required).
        auth: accept AUTH PLAIN/LOGIN with exactly this (username, password); AUTH is
            offered but not required, also without TLS.
        rcpt_reply: called with each recipient; a returned reply such as
            ``"550 5.1.1 no such user"`` refuses it, ``None`` accepts it.
        dsn: advertise DSN and accept RET/ENVID/NOTIFY/ORCPT (aiosmtpd refuses them
            otherwise with 555).
        drop_data: called with each message at the end of DATA; True drops the connection
            before any reply, so the client cannot know whether the message was taken.
        xoauth2: accept AUTH XOAUTH2 with exactly this (user, access token).
        port: listen here (0: any free port).
        """
        self.tls = tls
        self.auth = auth
        self.rcpt_reply = rcpt_reply
        self.dsn = dsn
        self.drop_data = drop_data
        self.xoauth2 = xoauth2
        self.port = port
        self._messages: list[Received] = []
        self._cond = threading.Condition()
        self._controller: _Controller | None = None

    @classmethod
    def start(
        cls,
        *,
        tls: TlsFiles | None = None,
        auth: tuple[str, str] | None = None,
        rcpt_reply: RcptReply | None = None,
        dsn: bool = False,
        drop_data: Callable[[Envelope], bool] | None = None,
        xoauth2: tuple[str, str] | None = None,
        port: int = 0,
    ) -> SmtpSink:
        """Create and start a sink (see ``__init__`` for the options)."""
        sink = cls(
            tls=tls,
            auth=auth,
            rcpt_reply=rcpt_reply,
            dsn=dsn,
            drop_data=drop_data,
            xoauth2=xoauth2,
            port=port,
        )
        sink._run()
        return sink

    def _run(self) -> None:
        """Start the controller thread and wait until it answers."""
        kwargs: dict[str, Any] = {
            "server_hostname": "localhost",  # avoids a slow getfqdn() per connection
            "ready_timeout": 10.0,
            "decode_data": False,
            "enable_SMTPUTF8": True,
        }
        if self.tls is not None:
            kwargs["tls_context"] = self.tls.server_context()
            kwargs["require_starttls"] = False
        if self.auth is not None or self.xoauth2 is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = False
        controller = _Controller(_Handler(self), dsn=self.dsn, port=self.port, **kwargs)
        controller.start()
        self._controller = controller
        self.port = controller.port

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """Accept exactly the configured username/password."""
        ok = self.auth is not None and (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login.decode("utf-8", "replace"),
                auth_data.password.decode("utf-8", "replace"),
            )
            == self.auth
        )
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False makes aiosmtpd send its 535 reply itself.
        return AuthResult(success=False, handled=False)

    def _record(self, message: Received) -> None:
        """Store a message and wake up waiters (called from the server thread)."""
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def received(self) -> list[Received]:
        """Return a copy of the messages received so far."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        """Forget all messages received so far."""
        with self._cond:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least *count* messages arrived; return them (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"SMTP sink got {len(self._messages)} of {count} messages within {timeout}s"
                    )
                self._cond.wait(min(remaining, 0.05))
            return list(self._messages)

    def stop(self) -> None:
        """Stop the server thread (idempotent)."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        """Use as a context manager that stops the sink on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the sink."""
        self.stop()
