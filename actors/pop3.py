"""A POP3 mailbox (RFC 1939, STLS from RFC 2595) on asyncio streams; none exists on PyPI.

POP3 shows a fixed snapshot per session and commits DELE only at QUIT, so each round is
one session: UIDL, RETR what is new, DELE what is done, QUIT."""

from __future__ import annotations

import asyncio
import ssl

from mailport.actors.mailbox import Fetched, Ref
from mailport.actors.tls import client_context
from mailport.config.models import Pop3Inbound, Security

MAX_LINE = 64 * 1024


class Pop3Error(Exception):
    pass


class Pop3Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float):
        self.reader, self.writer, self.timeout = reader, writer, timeout

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        security: Security,
        context: ssl.SSLContext | None,
        timeout: float,
    ) -> Pop3Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context if security is Security.TLS else None,
                limit=MAX_LINE,
            ),
            timeout,
        )
        client = cls(reader, writer, timeout)
        await client._status()
        if security is Security.STARTTLS:
            assert context is not None
            await client.command("STLS")
            await asyncio.wait_for(writer.start_tls(context, server_hostname=host), timeout)
        return client

    async def login(self, user: str, password: str) -> None:
        await self.command(f"USER {user}")
        await self.command(f"PASS {password}", secret=True)

    async def uidl(self) -> list[tuple[int, str]]:
        await self.command("UIDL")
        pairs = []
        for line in (await self._multiline()).splitlines():
            number, _, uid = line.decode("ascii", "replace").partition(" ")
            pairs.append((int(number), uid.strip()))
        return pairs

    async def retr(self, number: int) -> bytes:
        await self.command(f"RETR {number}")
        return await self._multiline()

    async def dele(self, number: int) -> None:
        await self.command(f"DELE {number}")

    async def quit(self) -> None:
        await self.command("QUIT")
        self.writer.close()

    def abort(self) -> None:
        self.writer.close()

    async def command(self, line: str, secret: bool = False) -> str:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()
        try:
            return await self._status()
        except Pop3Error as exc:
            shown = line.split()[0] + " ****" if secret else line
            raise Pop3Error(f"{shown}: {exc}") from exc

    async def _status(self) -> str:
        line = (await self._readline()).decode("utf-8", "replace")
        if not line.startswith("+OK"):
            raise Pop3Error(line.strip() or "connection closed")
        return line[3:].strip()

    async def _readline(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), self.timeout)

    async def _multiline(self) -> bytes:
        lines: list[bytes] = []
        while True:
            line = await self._readline()
            if not line:
                raise Pop3Error("connection closed in a multi-line response")
            if line in (b".\r\n", b".\n"):
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b"..") else line)


class Pop3Mailbox:
    def __init__(self, config: Pop3Inbound) -> None:
        self.config = config
        self._client: Pop3Client | None = None
        self._settled: set[str] = set()
        self._listing: list[tuple[int, str]] | None = None

    async def open(self) -> None:
        cfg = self.config
        password = cfg.password.resolve().get_secret_value()
        context = None
        if cfg.security is not Security.NONE:
            context = client_context(cfg.verify_certificate, cfg.ca_file)
        client = await Pop3Client.connect(
            cfg.host, cfg.port, security=cfg.security, context=context, timeout=cfg.timeout
        )
        try:
            await client.login(cfg.username, password)
        except BaseException:
            client.abort()
            raise
        self._client = client
        self._settled.clear()
        self._listing = None

    async def pending(self) -> list[Ref]:
        assert self._client is not None
        if self._listing is None:
            self._listing = await self._client.uidl()
        refs = [
            Ref(f"{self.config.name}:{uid}", str(number))
            for number, uid in self._listing
            if str(number) not in self._settled
        ]
        return refs[: self.config.batch_size]

    async def fetch(self, refs: list[Ref]) -> list[Fetched]:
        assert self._client is not None
        return [Fetched(r, await self._client.retr(int(r.handle))) for r in refs]

    async def settle(self, done: list[Ref], quarantined: list[Ref]) -> None:
        assert self._client is not None
        for ref in done + quarantined:
            if self.config.after == "delete":
                await self._client.dele(int(ref.handle))
            self._settled.add(ref.handle)

    async def wait(self) -> None:
        # QUIT commits the deletions; the next session sees mail that arrived meanwhile.
        await self.close()
        await asyncio.sleep(self.config.poll_interval)
        await self.open()

    async def reset(self) -> None:
        await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.quit()
        except Exception:
            client.abort()
