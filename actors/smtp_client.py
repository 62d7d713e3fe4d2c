"""An SMTP client session that pipelines (RFC 2920): MAIL, every RCPT and DATA go out in one
write, and their replies are read together, so a message costs two round trips, not 3 + n.

It speaks what an outbound connection needs and no more: implicit TLS or STARTTLS, AUTH
PLAIN, LOGIN and XOAUTH2, SIZE, 8BITMIME, SMTPUTF8 and DSN parameters."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")


class SmtpError(Exception):
    """The session cannot go on: no server, a broken reply, or a refusal before any mail."""

    def __init__(self, code: int | None, text: str) -> None:
        super().__init__(f"{code} {text}" if code is not None else text)
        self.code = code
        self.text = text


class NothingSent(SmtpError):
    """The session broke before the message's data went out: sending it again, on a new
    session, cannot make a duplicate. (A server closes sessions that sat idle.)"""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400


@dataclass(frozen=True, slots=True)
class Sent:
    """Each recipient's final reply, in the order given, and the command it answered
    (MAIL, RCPT or DATA): a refusal after DATA is of the message, not of the address."""

    replies: tuple[Reply, ...]
    commands: tuple[str, ...] = ()


@dataclass
class SmtpSession:
    host: str
    port: int
    timeout: float = 60.0
    tls: ssl.SSLContext | None = None
    """Implicit TLS when set and starttls is False; STARTTLS's context otherwise."""
    starttls: bool = False
    helo_name: str = "localhost"
    extensions: dict[str, str] = field(default_factory=dict)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        implicit = self.tls if not self.starttls else None
        async with asyncio.timeout(self.timeout):
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=implicit, server_hostname=self.host if implicit else None
            )
            await self._expect(220)
            await self._ehlo()
            if self.starttls:
                if "starttls" not in self.extensions:
                    raise SmtpError(None, "the server does not offer STARTTLS")
                await self._command(b"STARTTLS", 220)
                assert self.tls is not None
                await self._writer.start_tls(self.tls, server_hostname=self.host)
                await self._ehlo()

    async def login(self, username: str, password: str, mechanism: str | None = None) -> None:
        offered = self.extensions.get("auth", "").upper().split()
        chosen = mechanism or ("PLAIN" if "PLAIN" in offered else "LOGIN")
        async with asyncio.timeout(self.timeout):
            if chosen == "PLAIN":
                secret = _b64(f"\0{username}\0{password}")
                await self._command(b"AUTH PLAIN " + secret, 235)
            elif chosen == "LOGIN":
                await self._command(b"AUTH LOGIN", 334)
                await self._command(_b64(username), 334)
                await self._command(_b64(password), 235)
            elif chosen == "XOAUTH2":
                secret = _b64(f"user={username}\x01auth=Bearer {password}\x01\x01")
                reply = await self._send(b"AUTH XOAUTH2 " + secret)
                if reply.code == 334:  # the server's error details, then the refusal
                    reply = await self._send(b"")
                if reply.code != 235:
                    raise SmtpError(reply.code, reply.text)
            else:
                raise SmtpError(None, f"unknown AUTH mechanism {chosen}")

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        smtputf8: bool = False,
        rcpt_options: Sequence[str] = (),
        mail_options: Sequence[str] = (),
        orcpt: bool = False,
    ) -> Sent:
        """One transaction. A refusal of MAIL FROM, of DATA or of the message is every
        recipient's reply; a refused RCPT is that recipient's alone."""
        body = _dot_stuffed(data)
        mail = f"MAIL FROM:<{sender}>"
        if "size" in self.extensions:
            mail += f" SIZE={len(body)}"
        if smtputf8:
            if "smtputf8" not in self.extensions:
                return _every(recipients, Reply(553, "5.6.7 the server does not take SMTPUTF8"))
            mail += " SMTPUTF8"
        if "8bitmime" in self.extensions and not data.isascii():
            mail += " BODY=8BITMIME"
        mail += "".join(f" {o}" for o in mail_options)
        option = "".join(f" {o}" for o in rcpt_options)
        commands = [mail]
        for r in recipients:
            # ORCPT (RFC 3461 section 4.2) lets a DSN name the recipient as we wrote it.
            original = f" ORCPT=rfc822;{xtext(r)}" if orcpt else ""
            commands.append(f"RCPT TO:<{r}>{option}{original}")
        commands.append("DATA")
        encoded = [c.encode("utf-8") + b"\r\n" for c in commands]
        async with asyncio.timeout(self.timeout + len(body) / 100_000):
            try:
                replies = await self._envelope(encoded, len(commands))
            except (SmtpError, OSError) as exc:
                raise NothingSent(None, str(exc) or type(exc).__name__) from exc
            mail_reply, rcpt_replies = replies[0], replies[1 : 1 + len(recipients)]
            if not mail_reply.ok:
                await self._reset()
                return _every(recipients, mail_reply)
            data_reply = replies[-1] if len(replies) == len(commands) else None
            if data_reply is None or data_reply.code != 354:
                await self._reset()
                refusal = data_reply or Reply(554, "5.5.1 no valid recipients")
                return Sent(
                    tuple(r if not r.ok else refusal for r in rcpt_replies),
                    tuple("RCPT" if not r.ok else "DATA" for r in rcpt_replies),
                )
            self._write(body + b".\r\n")
            final = await self._read()
        return Sent(
            tuple(r if not r.ok else final for r in rcpt_replies),
            tuple("RCPT" if not r.ok else "DATA" for r in rcpt_replies),
        )

    async def _envelope(self, encoded: list[bytes], count: int) -> list[Reply]:
        """MAIL, RCPT and DATA, pipelined where the server allows; their replies."""
        if "pipelining" in self.extensions:
            self._write(b"".join(encoded))
            return [await self._read() for _ in range(count)]
        replies: list[Reply] = []
        for line in encoded:
            self._write(line)
            replies.append(await self._read())
            if line.startswith(b"MAIL") and not replies[-1].ok:
                break
            if line.startswith(b"DATA"):
                break
            last_rcpt = line.startswith(b"RCPT") and len(replies) == count - 1
            if last_rcpt and not any(r.ok for r in replies[1:]):
                break
        return replies

    async def quit(self) -> None:
        if self.connected:
            try:
                async with asyncio.timeout(2):
                    await self._command(b"QUIT", 221)
            except (SmtpError, OSError, TimeoutError):
                pass
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def _ehlo(self) -> None:
        reply = await self._send(f"EHLO {self.helo_name}".encode())
        if reply.code != 250:
            raise SmtpError(reply.code, reply.text)
        self.extensions = {}
        for line in reply.text.splitlines()[1:]:
            keyword, _, value = line.partition(" ")
            self.extensions[keyword.lower()] = value

    async def _reset(self) -> None:
        reply = await self._send(b"RSET")
        if reply.code == 421:
            raise SmtpError(reply.code, reply.text)

    async def _command(self, line: bytes, expected: int) -> Reply:
        reply = await self._send(line)
        if reply.code != expected:
            raise SmtpError(reply.code, reply.text)
        return reply

    async def _send(self, line: bytes) -> Reply:
        self._write(line + b"\r\n")
        return await self._read()

    async def _expect(self, code: int) -> None:
        reply = await self._read()
        if reply.code != code:
            raise SmtpError(reply.code, reply.text)

    def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise SmtpError(None, "not connected")
        self._writer.write(data)

    async def _read(self) -> Reply:
        if self._reader is None or self._writer is None:
            raise SmtpError(None, "not connected")
        await self._writer.drain()
        lines = []
        while True:
            line = await self._reader.readline()
            if not line.endswith(b"\n"):
                self.close()
                raise SmtpError(None, "the server closed the connection")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if len(text) < 3 or not text[:3].isdigit():
                self.close()
                raise SmtpError(None, f"not an SMTP reply: {text[:80]!r}")
            lines.append(text[4:])
            if text[3:4] != "-":
                reply = Reply(int(text[:3]), "\n".join(lines))
                if reply.code == 421:
                    self.close()
                return reply


def _dot_stuffed(data: bytes) -> bytes:
    """CRLF line ends throughout, a leading dot doubled (RFC 5321 section 4.5.2), and a
    final CRLF."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _BARE_CR.sub(b"\r\n", _BARE_LF.sub(b"\r\n", data))  # rare: not CRLF already
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    return b"." + data if data.startswith(b".") else data


def xtext(text: str) -> str:
    """RFC 3461 section 4: printable ASCII but "+" and "=", the rest as +XX."""
    return "".join(
        f"+{b:02X}" if b < 33 or b > 126 or b in (43, 61) else chr(b) for b in text.encode()
    )


def _every(recipients: Sequence[str], reply: Reply) -> Sent:
    return Sent(tuple(reply for _ in recipients), tuple("MAIL" for _ in recipients))


def _b64(text: str) -> bytes:
    return base64.b64encode(text.encode("utf-8"))
