"""`mailport bench outbound`: 10 KB messages from the durable queue into Postfix's smtp-sink,
over 1 and 8 sessions, beside `smtp-source -d` with as many sessions into the same sink, and
a plain aiosmtplib loop over one connection.

mailport's figure counts from the first lease to the last message recorded as sent: every
message is read from the store, delivered, and its recipients' replies written back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiosmtplib

from mailport.actors.events import EventSink
from mailport.actors.outbound import OutboundLoop
from mailport.actors.stats import Event
from mailport.actors.transports import SmtpPool
from mailport.bench.harness import Advance, Options, Result, scenario
from mailport.config.models import Node, Security, Settings, SmtpOutbound, Store
from mailport.mail import Address, OutboundMessage, compose
from mailport.store import Outgoing, QueuedMail
from mailport.store import Store as MailStore

SIZE = 10_240
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


@scenario("outbound", "10 KB messages from the queue into smtp-sink; anchor: smtp-source -d")
def bench_outbound(options: Options, task: Callable[[str, float], Advance]) -> Result:
    for tool in (SINK, SOURCE):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is missing: install Postfix (tests/servers/install.sh)")
    count = 1000 if options.quick else 5000
    figures: dict[str, float] = {}
    with _smtp_sink() as port:
        for sessions in (1, 8):
            figures[f"smtp-source x{sessions}"] = _smtp_source(port, sessions, count, task)
        figures["aiosmtplib x1"] = asyncio.run(_aiosmtplib(port, count // 2, task))
        cpu = 0.0
        for sessions in (1, 8):
            rate, cpu = asyncio.run(_mailport(port, sessions, count, task))
            figures[f"mailport x{sessions}"] = rate
        # The same SMTP client with no queue: what the store costs, and the client's ceiling.
        figures["mailport client alone x8"] = asyncio.run(_client_alone(port, 8, count, task))
    return Result(
        scenario="outbound",
        unit="messages/s at 8 sessions",
        mailport=round(figures["mailport x8"], 1),
        anchor=round(figures["smtp-source x8"], 1),
        anchor_name="smtp-source -d",
        details={
            **{name: round(value, 1) for name, value in figures.items()},
            "messages per run": count,
            "message size": SIZE,
            "ratio at 1 session": round(figures["mailport x1"] / figures["smtp-source x1"], 2),
            # CPU time of this process per message at 8 sessions: near the wall time per
            # message means one core is the limit (smtp-sink needs the other at this rate).
            "mailport CPU µs/message x8": round(cpu * 1e6 / count),
        },
    )


@contextlib.contextmanager
def _smtp_sink() -> Iterator[int]:
    port = _free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(
        [SINK, *user, f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or sink.poll() is not None:
                raise SystemExit("smtp-sink did not start")
            time.sleep(0.05)
        yield port
    finally:
        sink.terminate()
        sink.wait(5)


def _smtp_source(
    port: int, sessions: int, count: int, task: Callable[[str, float], Advance]
) -> float:
    advance = task(f"smtp-source x{sessions}", 1)
    started = time.perf_counter()
    subprocess.run(
        [
            SOURCE,
            "-d",
            "-s",
            str(sessions),
            "-m",
            str(count),
            "-l",
            str(SIZE),
            "-f",
            "bench@mailport.test",
            "-t",
            "sink@example.test",
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    advance(1)
    return count / elapsed


def _messages(count: int, tag: str) -> list[Outgoing]:
    body = ("x" * 76 + "\n") * (SIZE // 77)
    template = compose(
        OutboundMessage(
            from_=Address("Bench", "bench@mailport.test"),
            to=(Address("", "sink@example.test"),),
            subject="outbound benchmark",
            text=body,
        ),
        message_id="<MESSAGE-ID>",
    )
    return [
        Outgoing(
            message_id=f"<{tag}-{i}@mailport.test>",
            sender=template.sender,
            recipients=template.recipients,
            data=template.data.replace(b"<MESSAGE-ID>", f"<{tag}-{i}@mailport.test>".encode()),
            smtputf8=False,
            application="bench",
        )
        for i in range(count)
    ]


async def _aiosmtplib(port: int, count: int, task: Callable[[str, float], Advance]) -> float:
    messages = _messages(count, "aiosmtplib")
    advance = task("aiosmtplib x1", count)
    started = time.perf_counter()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
        for mail in messages:
            await client.sendmail(mail.sender, list(mail.recipients), mail.data)
            advance(1)
    return count / (time.perf_counter() - started)


async def _mailport(
    port: int, sessions: int, count: int, task: Callable[[str, float], Advance]
) -> tuple[float, float]:
    """Messages a second through the durable queue, and the CPU seconds this process used."""
    directory = Path(tempfile.mkdtemp(prefix="mailport-bench-"))
    try:
        settings = Settings(
            node=Node(data_dir=directory),
            store=Store(url=f"sqlite+aiosqlite:///{directory / 'bench.db'}"),
            inbound=(),
            outbound=(
                SmtpOutbound(
                    kind="smtp",
                    name="sink",
                    host="127.0.0.1",
                    port=port,
                    security=Security.NONE,
                    pool_size=sessions,
                ),
            ),
        )
        store = await MailStore.open(settings.store.url)
        try:
            await store.enqueue(_messages(count, f"mailport{sessions}"))
            advance = task(f"mailport x{sessions}", count)
            loop = OutboundLoop(settings, "sink")
            loop.events = _Progress(advance)
            started, cpu = time.perf_counter(), time.process_time()
            await loop.run(until_idle=True)
            elapsed = time.perf_counter() - started
            cpu_used = time.process_time() - cpu
            sent = len(await store.rows("outbound", state="sent"))
        finally:
            await store.close()
        if sent != count:
            raise SystemExit(f"mailport sent {sent} of {count}")
        return count / elapsed, cpu_used
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _client_alone(
    port: int, sessions: int, count: int, task: Callable[[str, float], Advance]
) -> float:
    config = SmtpOutbound(
        kind="smtp",
        name="sink",
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        pool_size=sessions,
    )
    pool = SmtpPool(config)
    mails = [
        QueuedMail(i, m.message_id, m.sender, m.recipients, m.data, False, 1, "bench")
        for i, m in enumerate(_messages(count, "alone"))
    ]
    todo = iter(mails)
    advance = task(f"mailport client alone x{sessions}", count)

    async def worker() -> None:
        for mail in todo:
            await pool.deliver(mail)
            advance(1)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(sessions)))
    finally:
        await pool.close()
    return count / (time.perf_counter() - started)


class _Progress(EventSink):
    """Each message's event advances the progress bar instead of the log."""

    def __init__(self, advance: Advance) -> None:
        super().__init__()
        self.advance = advance

    def emit(self, event: Event) -> None:
        self.advance(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
