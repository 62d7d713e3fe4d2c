"""Session-wide real servers and one shared mailport node, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import ray

from mailport.cluster.node import Node, init_ray
from mailport.config.models import (
    Application,
    Routing,
    Rule,
    Settings,
    SmtpOutbound,
    Store,
)
from mailport.config.models import Node as NodeSettings
from mailport.store import Store as MailStore
from tests.apps import LEDGER
from tests.servers.dovecot import Dovecot
from tests.servers.postgres import Postgres
from tests.servers.smtp_sink import SmtpSink
from tests.servers.tls import TlsFiles, make_tls

REPO = Path(__file__).resolve().parents[1]
SUPPORT = "support@mailport.test"


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def dovecot(tls: TlsFiles) -> Iterator[Dovecot]:
    server = Dovecot.start(tls)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One private PostgreSQL for the session; each test makes a database of its own."""
    server = Postgres.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    # Mailboxes named refused@ do not exist there: 550, as a real server would answer.
    sink = SmtpSink.start(
        rcpt_reply=lambda rcpt: "550 5.1.1 no such user" if rcpt.startswith("refused@") else None
    )
    yield sink
    sink.stop()


AUTOMATIC_REPLIES = 60


@pytest.fixture(scope="session")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger") / "calls.jsonl"


@pytest.fixture(scope="session")
def ray_session(ledger: Path) -> Iterator[None]:
    # Actor processes inherit this environment: they import the test applications from the
    # repository and write the same ledger.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    os.environ[LEDGER] = str(ledger)
    init_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink) -> Settings:
    data = tmp_path_factory.mktemp("node")
    return Settings(
        node=NodeSettings(shards=2, data_dir=data),
        store=Store(url=f"sqlite+aiosqlite:///{data / 'mailport.db'}"),
        inbound=(),
        outbound=(
            SmtpOutbound(
                kind="smtp",
                name="sink",
                host=smtp_sink.host,
                port=smtp_sink.port,
                security="none",
                pool_size=4,
                # The suite's own mail; the Postfix relay carries example.test senders'.
                sender_domains=["mailport.test"],
            ),
        ),
        applications=(
            Application(
                name="recorder",
                handler="tests.apps:record",
                address=SUPPORT,
                receipt_handler="tests.apps:keep_receipt",
            ),
            Application(name="explode", handler="tests.apps:explode", address=SUPPORT),
        ),
        routing=Routing(
            rules=(Rule(recipient="explode@example.test", application="explode"),),
            default="recorder",
        ),
        # The suite sends the corpus more than once, and some senders write many of its
        # messages: above what they get, so only the test of the limit reaches it.
        automatic_replies_per_sender=AUTOMATIC_REPLIES,
    )


@pytest.fixture(scope="session")
async def node(ray_session: None, settings: Settings) -> AsyncIterator[Node]:
    node = Node(settings)
    await node.start()

    async def supervise() -> None:
        while True:
            await node.supervise()
            await asyncio.sleep(0.5)

    task = asyncio.get_running_loop().create_task(supervise())
    yield node
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await node.stop()


@pytest.fixture(scope="session")
async def store(settings: Settings) -> AsyncIterator[MailStore]:
    store = await MailStore.open(settings.store.url)
    yield store
    await store.close()
