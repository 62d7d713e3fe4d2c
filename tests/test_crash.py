"""Kill the InboundConnection in the middle of a batch: nothing lost, nothing handled twice."""

from __future__ import annotations

import time
from collections import Counter
from email import message_from_bytes
from email.policy import compat32

import ray

from mailport.cluster.node import Node
from tests.apps import read_ledger
from tests.flow import imap, msgid, wait_until
from tests.servers.dovecot import Dovecot
from tests.servers.smtp_sink import SmtpSink

COUNT = 500


def _message(user: str, n: int) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.org>\r\n"
        f"To: {user}@example.test\r\n"
        f"Subject: order {n}\r\n"
        f"Message-ID: <crash-{n}-{user}@example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Where is my order {n}?\r\n"
    ).encode()


async def test_inbound_actor_killed_mid_batch(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink, ledger: str
) -> None:
    user = dovecot.new_user("crash")
    ids = {f"<crash-{n}-{user}@example.org>" for n in range(COUNT)}
    dovecot.append_many(user, [_message(user, n) for n in range(COUNT)])
    config = imap(dovecot, user, "tls", batch_size=25)

    def handled() -> Counter[str]:
        return Counter(
            c["message_id"] for c in read_ledger(ledger) if c["connection"] == config.name
        )

    started = time.monotonic()
    await node.add_inbound(config)
    try:
        await wait_until(lambda: len(handled()) >= COUNT // 5, 120, "a fifth of the batch")
        at_kill = len(handled())
        ray.kill(node.inbound[config.name], no_restart=False)
        await wait_until(
            lambda: not dovecot.search(user, "INBOX", "UNKEYWORD $MailportProcessed"),
            240,
            "every message flagged after the restart",
        )
    finally:
        elapsed = time.monotonic() - started
        await node.remove_inbound(config.name)

    calls = handled()
    await wait_until(lambda: ids <= set(_replies(smtp_sink)), 60, "every reply at the sink")
    replies = _replies(smtp_sink)
    print(
        f"\ncrash test: killed after {at_kill}/{COUNT} handled; application calls "
        f"{sum(calls.values())} for {len(calls)} messages; replies at the sink "
        f"{sum(replies[i] for i in ids)} for {len(ids & set(replies))} messages; "
        f"all flagged {elapsed:.1f} s after the start"
    )
    assert set(calls) == ids
    assert [i for i, n in calls.items() if n != 1] == []
    assert [i for i in ids if replies[i] != 1] == []


def _replies(sink: SmtpSink) -> Counter[str | None]:
    return Counter(
        msgid(message_from_bytes(m.data, policy=compat32)["In-Reply-To"]) for m in sink.received()
    )
