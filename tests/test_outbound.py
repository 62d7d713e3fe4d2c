"""The outbound engine on real SMTP servers: resizing, failover, deferral and crashes."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import ray
from aiosmtpd.smtp import Envelope

from mailport.actors.outbound import BATCH, OutboundConnection
from mailport.cluster.admin import resize_pool
from mailport.config.models import Node as NodeSettings
from mailport.config.models import Settings, SmtpOutbound, Store
from mailport.store import Outgoing
from mailport.store import Store as MailStore
from tests.servers.smtp_sink import SmtpSink
from tests.servers.sockets import free_port

_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)


def _settings(tmp: Path, *connections: SmtpOutbound) -> Settings:
    return Settings(
        node=NodeSettings(data_dir=tmp),
        store=Store(url=f"sqlite+aiosqlite:///{tmp / 'outbound.db'}"),
        inbound=(),
        outbound=connections,
    )


def _smtp(name: str, port: int, pool_size: int = 4) -> SmtpOutbound:
    return SmtpOutbound(
        kind="smtp", name=name, host="127.0.0.1", port=port, security="none", pool_size=pool_size
    )


def _mail(n: int, tag: str) -> list[Outgoing]:
    return [
        Outgoing(
            message_id=f"<{tag}-{i}@mailport.test>",
            sender="app@mailport.test",
            recipients=(f"customer{i % 50}@example.test",),
            data=(
                f"From: app@mailport.test\r\nTo: customer{i % 50}@example.test\r\n"
                f"Subject: {tag} {i}\r\nMessage-ID: <{tag}-{i}@mailport.test>\r\n\r\n"
                f"{'body line ' * 20}\r\n"
            ).encode(),
            smtputf8=False,
            application="test",
        )
        for i in range(n)
    ]


def _ids(sink: SmtpSink) -> Counter[bytes]:
    return Counter(m.group(1) for r in sink.received() if (m := _ID.search(r.data)))


async def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _poll(read: Callable[[], Awaitable[object]], want: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while (got := await read()) != want:
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {got}"
        await asyncio.sleep(0.05)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink.start() as server:
        yield server


@pytest.fixture
async def outbound_store(tmp_path: Path) -> AsyncIterator[MailStore]:
    store = await MailStore.open(f"sqlite+aiosqlite:///{tmp_path / 'outbound.db'}")
    yield store
    await store.close()


async def _start(settings: Settings, name: str) -> ray.actor.ActorHandle:
    actor = OutboundConnection.remote(settings, name)  # type: ignore[attr-defined]
    await actor.ensure_running.remote()
    return actor


async def test_resizing_the_pool_while_it_sends_loses_nothing(
    ray_session: None, tmp_path: Path, outbound_store: MailStore
) -> None:
    def unhurried(_address: str) -> None:
        time.sleep(0.0005)  # a server that takes its time, so the resizes land mid-batch

    with SmtpSink.start(rcpt_reply=unhurried) as sink:
        settings = _settings(tmp_path, _smtp("pool", sink.port, pool_size=4))
        await outbound_store.enqueue(_mail(5000, "resize"))
        actor = await _start(settings, "pool")

        async def pool() -> dict[str, int]:
            return dict((await actor.ensure_running.remote())["pool"])

        try:
            await _until(lambda: len(sink.received()) >= 1000, 120, "1,000 messages")
            assert await resize_pool(settings, "pool", 1) == (4, 1)
            await _poll(pool, {"size": 1, "sessions": 1}, "the pool to shrink to 1")
            assert len(sink.received()) < 5000, "the batch ended before the shrink"
            assert await resize_pool(settings, "pool", 8) == (1, 8)
            await _poll(pool, {"size": 8, "sessions": 8}, "the pool to grow to 8")
            assert len(sink.received()) < 5000, "the batch ended before the growth"
            await _until(lambda: len(sink.received()) >= 5000, 120, "5,000 messages")
        finally:
            ray.kill(actor)
    ids = _ids(sink)
    duplicates = sum(n - 1 for n in ids.values())
    print(f"\nresize 4 -> 1 -> 8: {len(ids)} distinct of 5000 arrived, {duplicates} duplicates")
    assert len(ids) == 5000 and duplicates == 0
    log = await outbound_store.audit_log()
    assert [(e["action"], e["subject"], e["detail"]) for e in reversed(log)] == [
        ("pool.resize", "pool", "pool size 4 -> 1"),
        ("pool.resize", "pool", "pool size 1 -> 8"),
    ]
    assert all(e["who"].startswith("cli:") for e in log)


async def test_a_dead_server_fails_over_and_raises_an_alarm(
    ray_session: None, tmp_path: Path, sink: SmtpSink, outbound_store: MailStore
) -> None:
    dead = _smtp("dead", free_port(), pool_size=2)
    settings = _settings(tmp_path, dead, _smtp("alive", sink.port, pool_size=2))
    await outbound_store.enqueue(_mail(300, "failover"))
    actors = [await _start(settings, "dead")]  # first, so that it is the one taking the mail
    try:
        deadline = time.monotonic() + 60
        while not await outbound_store.open_alarms():
            assert time.monotonic() < deadline, "no alarm for the dead server"
            await asyncio.sleep(0.1)
        actors.append(await _start(settings, "alive"))
        await _until(lambda: len(_ids(sink)) >= 300, 60, "300 messages through the live server")
        deadline = time.monotonic() + 30
        while len(await outbound_store.rows("outbound", state="sent")) < 300:
            assert time.monotonic() < deadline, "the live connection never recorded them all"
            await asyncio.sleep(0.1)
        alarms = await outbound_store.open_alarms()
        assert [a["key"] for a in alarms] == ["outbound:dead"]
        assert "taken out of rotation" in alarms[0]["text"]
        assert "ConnectionRefusedError" in alarms[0]["text"] or "Errno 111" in alarms[0]["text"]
    finally:
        for actor in actors:
            ray.kill(actor)
    rows = await outbound_store.rows("outbound")
    assert Counter(r["state"] for r in rows) == {"sent": 300}
    assert {r["connection"] for r in rows} == {"alive"}


async def test_a_server_that_defers_then_recovers_gets_everything(
    ray_session: None, tmp_path: Path, outbound_store: MailStore
) -> None:
    busy = threading.Event()
    busy.set()

    def reply(_address: str) -> str | None:
        return "451 4.3.2 try again later" if busy.is_set() else None

    with SmtpSink.start(rcpt_reply=reply) as sink:
        settings = _settings(tmp_path, _smtp("flaky", sink.port, pool_size=2))
        await outbound_store.enqueue(_mail(20, "defer"))
        actor = await _start(settings, "flaky")
        try:

            async def deferred() -> bool:
                rows = await outbound_store.rows("outbound")
                return all(r["state"] == "deferred" for r in rows)

            deadline = time.monotonic() + 30
            while not await deferred():
                assert time.monotonic() < deadline, "the 451s never deferred the mail"
                await asyncio.sleep(0.1)
            rows = await outbound_store.rows("outbound")
            assert {r["last_error"] for r in rows} == {
                f"customer{i}@example.test: 451 4.3.2 try again later" for i in range(20)
            }
            busy.clear()
            await _until(lambda: len(_ids(sink)) >= 20, 60, "the deferred mail")
        finally:
            ray.kill(actor)
    assert sorted(_ids(sink).values()) == [1] * 20


async def test_killing_the_connection_mid_batch_loses_nothing(
    ray_session: None, tmp_path: Path, sink: SmtpSink, outbound_store: MailStore
) -> None:
    settings = _settings(tmp_path, _smtp("crashy", sink.port, pool_size=4))
    await outbound_store.enqueue(_mail(2000, "crash"))
    actor = await _start(settings, "crashy")
    await _until(lambda: len(sink.received()) >= 500, 60, "500 messages")
    ray.kill(actor, no_restart=True)
    actor = await _start(settings, "crashy")
    try:
        await _until(lambda: len(_ids(sink)) >= 2000, 120, "2,000 distinct messages")
    finally:
        ray.kill(actor)
    ids = _ids(sink)
    duplicates = sum(n - 1 for n in ids.values())
    print(
        f"\nkill mid-batch: {len(ids)} of 2000 arrived, {duplicates} duplicates (sent, not yet"
        f" recorded when killed; at most the {4 * BATCH} a connection holds)"
    )
    assert len(ids) == 2000
    assert duplicates <= 4 * BATCH


async def test_some_recipients_refused_or_deferred_are_kept_apart(
    ray_session: None, tmp_path: Path, outbound_store: MailStore
) -> None:
    full = threading.Event()
    full.set()

    def reply(address: str) -> str | None:
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        if address.startswith("full@") and full.is_set():
            return "452 4.2.2 mailbox full"
        return None

    with SmtpSink.start(rcpt_reply=reply) as sink:
        settings = _settings(tmp_path, _smtp("picky", sink.port, pool_size=1))
        [mail] = _mail(1, "partial")
        rcpts = ("ok@example.test", "gone@example.test", "full@example.test")
        await outbound_store.enqueue([Outgoing(**{**_fields(mail), "recipients": rcpts})])
        actor = await _start(settings, "picky")
        try:
            await _until(lambda: len(sink.received()) >= 1, 30, "the first delivery")
            [row] = await outbound_store.rows("outbound")
            deadline = time.monotonic() + 30
            while row["state"] != "deferred":
                assert time.monotonic() < deadline, f"state stayed {row['state']}"
                await asyncio.sleep(0.05)
                [row] = await outbound_store.rows("outbound")
            assert [r["outbound_id"] for r in await outbound_store.rows("outbound_pending")] == [
                row["id"]
            ]
            full.clear()
            await _until(lambda: len(sink.received()) >= 2, 60, "the deferred recipient")
            deadline = time.monotonic() + 30
            while row["state"] != "sent":
                assert time.monotonic() < deadline, f"state stayed {row['state']}"
                await asyncio.sleep(0.05)
                [row] = await outbound_store.rows("outbound")
        finally:
            ray.kill(actor)
    assert [r.rcpt_tos for r in sink.received()] == [
        ("ok@example.test",),
        ("full@example.test",),
    ]
    history = [
        (a["attempt"], a["recipient"], a["outcome"], a["code"])
        for a in await outbound_store.attempts(row["id"])
    ]
    assert history == [
        (1, "ok@example.test", "sent", 250),
        (1, "gone@example.test", "failed", 550),
        (1, "full@example.test", "deferred", 452),
        (2, "full@example.test", "sent", 250),
    ]
    assert row["last_error"] == "gone@example.test: 550 5.1.1 no such user"
    assert await outbound_store.rows("outbound_pending") == []  # nobody is left


async def test_a_connection_dropped_at_the_end_of_data_is_resent(
    ray_session: None, tmp_path: Path, outbound_store: MailStore
) -> None:
    dropped: Counter[bytes] = Counter()

    def drop(envelope: Envelope) -> bool:
        found = _ID.search(envelope.original_content or b"")
        key = found.group(1) if found else b""
        dropped[key] += 1
        return dropped[key] == 1 and int(key.split(b"-")[1].split(b"@")[0]) % 10 == 0

    with SmtpSink.start(drop_data=drop) as sink:
        settings = _settings(tmp_path, _smtp("drops", sink.port, pool_size=2))
        await outbound_store.enqueue(_mail(100, "drop"))
        actor = await _start(settings, "drops")
        try:
            await _until(lambda: len(_ids(sink)) >= 100, 90, "all 100 messages")
        finally:
            ray.kill(actor)
    ids = _ids(sink)
    duplicates = sum(n - 1 for n in ids.values())
    resent = sum(1 for n in dropped.values() if n > 1)
    print(
        f"\ndropped at DATA: 10 dropped, {resent} resent, {len(ids)} of 100 arrived,"
        f" {duplicates} duplicates"
    )
    assert len(ids) == 100 and resent == 10 and duplicates == 0


def _fields(mail: Outgoing) -> dict[str, object]:
    return {k: getattr(mail, k) for k in Outgoing.__dataclass_fields__}


async def test_an_alarm_clears_when_the_server_is_back_with_no_mail_waiting(
    ray_session: None, tmp_path: Path, sink: SmtpSink, outbound_store: MailStore
) -> None:
    port = free_port()
    flappy, alive = _smtp("flappy", port, pool_size=1), _smtp("alive", sink.port, pool_size=1)
    settings = _settings(tmp_path, flappy, alive)
    await outbound_store.enqueue(_mail(30, "flap"))
    actors = [await _start(settings, "flappy")]  # alone first, so that it fails for sure
    try:
        deadline = time.monotonic() + 60
        while [a["key"] for a in await outbound_store.open_alarms()] != ["outbound:flappy"]:
            assert time.monotonic() < deadline, "no alarm for the dead server"
            await asyncio.sleep(0.1)
        actors.append(await _start(settings, "alive"))
        await _until(lambda: len(_ids(sink)) >= 30, 60, "the mail, through the live server")
        with SmtpSink.start(port=port) as back:
            deadline = time.monotonic() + 90  # the breaker's pause grows to 60 s at most
            while await outbound_store.open_alarms():
                assert time.monotonic() < deadline, "the alarm stayed open"
                await asyncio.sleep(0.2)
            assert back.received() == []  # cleared by a probe, not by mail
    finally:
        for actor in actors:
            ray.kill(actor)


async def test_a_store_that_cannot_be_opened_shows_as_the_connections_error(
    ray_session: None, tmp_path: Path, sink: SmtpSink
) -> None:
    """As when an actor's process lacks the database password its node has: not a
    connection forever "starting" with no word of why."""
    unreachable = Store(url=f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    settings = _settings(tmp_path, _smtp("nostore", sink.port)).model_copy(
        update={"store": unreachable}
    )
    actor = OutboundConnection.remote(settings, "nostore")  # type: ignore[attr-defined]

    async def state() -> tuple[str, str]:
        answer = await actor.ensure_running.remote()
        return answer["state"], answer["error"] or ""

    try:
        await _poll(
            state,
            ("cannot start", "OperationalError: unable to open database file"),
            "the store's error",
        )
    finally:
        ray.kill(actor)
