"""An IMAP4rev1 mailbox over aioimaplib, with IDLE, STARTTLS and a dead-connection watchdog.

aioimaplib does not notice a silently dropped connection, so every wait here is bounded:
an IDLE is ended at least every heartbeat, and its DONE must be answered within the
connection's timeout or the connection is declared dead."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aioimaplib

from mailport.actors.mailbox import Fetched, Ref
from mailport.actors.tls import client_context
from mailport.config.models import ImapInbound, Security

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_START = re.compile(rb"^(\d+) FETCH \(")
_UID = re.compile(rb"UID (\d+)")
HEARTBEAT = 60.0


class ImapError(Exception):
    pass


class ImapMailbox:
    def __init__(self, config: ImapInbound) -> None:
        self.config = config
        self._client: Any = None
        self._lost = asyncio.Event()
        self.uidvalidity = 0
        self.idle_supported = False

    async def open(self) -> None:
        cfg = self.config
        password = cfg.password.resolve().get_secret_value()
        context = None
        if cfg.security is not Security.NONE:
            context = client_context(cfg.verify_certificate, cfg.ca_file)
        self._lost.clear()
        client = aioimaplib.IMAP4(
            host=cfg.host,
            port=cfg.port,
            timeout=cfg.timeout,
            conn_lost_cb=lambda _exc: self._lost.set(),
            ssl_context=context if cfg.security is Security.TLS else None,
        )
        self._client = client
        await client.wait_hello_from_server()
        if cfg.security is Security.STARTTLS:
            assert context is not None
            await self._starttls(context)
        _ok(await client.login(cfg.username, password), "LOGIN")
        response = _ok(await client.select(cfg.folder), f"SELECT {cfg.folder}")
        match = next(
            filter(None, (_UIDVALIDITY.search(bytes(line)) for line in response.lines)), None
        )
        if match is None:
            raise ImapError("server sent no UIDVALIDITY")
        self.uidvalidity = int(match.group(1))
        self.idle_supported = cfg.idle and client.has_capability("IDLE")
        if cfg.after.startswith("move:"):
            await client.create(cfg.after[5:])  # "already exists" is fine

    async def _starttls(self, context: Any) -> None:
        # aioimaplib has no starttls(): send the command, upgrade the transport in place,
        # then ask for the capabilities again, as RFC 3501 section 6.2.1 requires.
        client, cfg = self._client, self.config
        if not client.has_capability("STARTTLS"):
            raise ImapError("server does not offer STARTTLS")
        protocol = client.protocol
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        _ok(await asyncio.wait_for(protocol.execute(command), cfg.timeout), "STARTTLS")
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(
            protocol.transport, protocol, context, server_hostname=cfg.host
        )
        await asyncio.wait_for(protocol.capability(), cfg.timeout)

    def key(self, uid: str) -> str:
        return f"{self.config.name}:{self.uidvalidity}:{uid}"

    async def pending(self) -> list[Ref]:
        response = _ok(
            await self._bounded(
                self._client.uid_search(
                    "UNKEYWORD", self.config.processed_flag, "UNDELETED", charset=None
                )
            ),
            "UID SEARCH",
        )
        uids = [u for line in response.lines[:-1] for u in bytes(line).split() if u.isdigit()]
        uids.sort(key=int)
        return [Ref(self.key(u.decode()), u.decode()) for u in uids[: self.config.batch_size]]

    async def fetch(self, refs: list[Ref]) -> list[Fetched]:
        if not refs:
            return []
        by_uid = {r.handle: r for r in refs}
        response = _ok(
            await self._bounded(self._client.uid("fetch", ",".join(by_uid), "(UID BODY.PEEK[])")),
            "UID FETCH",
        )
        return [Fetched(by_uid[uid], raw) for uid, raw in _fetched(response.lines) if uid in by_uid]

    async def settle(self, done: list[Ref], quarantined: list[Ref]) -> None:
        refs = done + quarantined
        if not refs:
            return
        cfg, client = self.config, self._client
        uids = ",".join(r.handle for r in refs)
        flags = [cfg.processed_flag]
        if cfg.after == "delete":
            flags.append("\\Deleted")
        _ok(
            await self._bounded(client.uid("store", uids, "+FLAGS.SILENT", f"({' '.join(flags)})")),
            "UID STORE",
        )
        if quarantined and cfg.after == "flag":
            q = ",".join(r.handle for r in quarantined)
            await self._bounded(client.uid("store", q, "+FLAGS.SILENT", "($MailportQuarantined)"))
        if cfg.after == "delete":
            _ok(await self._bounded(client.uid("expunge", uids)), "UID EXPUNGE")
        elif cfg.after.startswith("move:"):
            _ok(await self._bounded(client.uid("move", uids, cfg.after[5:])), "UID MOVE")

    async def wait(self) -> None:
        client = self._client
        if self._lost.is_set():
            raise ConnectionError("connection lost")
        heartbeat = min(HEARTBEAT, self.config.idle_renew, self.config.poll_interval)
        if not self.idle_supported:
            await _first(asyncio.sleep(self.config.poll_interval), self._lost.wait())
            _ok(await client.noop(), "NOOP")
            return
        idle = await asyncio.wait_for(
            client.idle_start(timeout=self.config.idle_renew), self.config.timeout
        )
        await _first(client.wait_server_push(), self._lost.wait(), timeout=heartbeat)
        if self._lost.is_set():
            raise ConnectionError("connection lost during IDLE")
        client.idle_done()
        try:
            await asyncio.wait_for(idle, self.config.timeout)
        except TimeoutError as exc:
            raise ConnectionError("no answer to IDLE DONE: connection is dead") from exc

    async def reset(self) -> None:
        await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(client.logout(), 2)
        except Exception:  # logging out of a dead connection fails; nothing is lost
            pass
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()

    async def _bounded(self, call: Any) -> Any:
        return await asyncio.wait_for(call, self.config.timeout)


async def _first(*aws: Any, timeout: float | None = None) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _ok(response: Any, what: str) -> Any:
    if response.result != "OK":
        text = b" ".join(bytes(line) for line in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{what} failed: {response.result} {text}")
    return response


def _fetched(lines: list[Any]) -> list[tuple[str, bytes]]:
    """(uid, raw) pairs from aioimaplib's FETCH lines: a header line, a literal, a tail."""
    result: list[tuple[str, bytes]] = []
    uid: str | None = None
    raw: bytes | None = None
    for line in lines:
        if isinstance(line, bytearray):
            raw = bytes(line)
            continue
        line = bytes(line)
        if _FETCH_START.match(line):
            if uid is not None and raw is not None:
                result.append((uid, raw))
            uid, raw = None, None
        match = _UID.search(line)
        if match:
            uid = match.group(1).decode()
    if uid is not None and raw is not None:
        result.append((uid, raw))
    return result
