"""aioimaplib never notices a connection that went silent; mailport's watchdog must."""

from __future__ import annotations

import asyncio
import time

from mailport.cluster.node import Node
from tests.flow import imap, wait_until
from tests.servers.dovecot import Dovecot
from tests.servers.proxy import SilentProxy
from tests.servers.smtp_sink import SmtpSink


def _message(user: str, n: int) -> bytes:
    return (
        f"From: Pat <pat@example.org>\r\nTo: {user}@example.test\r\nSubject: ping {n}\r\n"
        f"Message-ID: <watchdog-{n}-{user}@example.org>\r\n\r\nping\r\n"
    ).encode()


async def test_idle_push_then_a_silent_connection_is_replaced(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    user = dovecot.new_user("watchdog")
    proxy = SilentProxy.start(dovecot.host, dovecot.imap_port)
    config = imap(dovecot, user, "none").model_copy(
        update={"port": proxy.port, "host": proxy.host, "poll_interval": 3, "timeout": 3}
    )
    processed = "UNKEYWORD $MailportProcessed"
    try:
        await node.add_inbound(config)

        async def idle() -> bool:
            states = {a["connection"]: a["state"] for a in await node.supervise()}
            return states.get(config.name) == "idle"

        await wait_until(idle, 30, "the connection to reach IDLE")
        # While IDLE, Dovecot pushes new mail (about 0.5 s after it arrives).
        dovecot.append(user, _message(user, 1))
        await wait_until(
            lambda: not dovecot.search(user, "INBOX", processed),
            10,
            "the pushed message to be processed",
        )

        proxy.silence()
        silenced = time.monotonic()
        await asyncio.sleep(0.5)
        dovecot.append(user, _message(user, 2))
        await wait_until(
            lambda: not dovecot.search(user, "INBOX", processed),
            60,
            "mail to flow again over a new connection",
        )
        recovery = time.monotonic() - silenced
    finally:
        await node.remove_inbound(config.name)
        proxy.stop()
    print(
        f"\nwatchdog: mail flowed again {recovery:.1f} s after the connection went silent "
        f"(heartbeat {config.poll_interval:.0f} s, timeout {config.timeout:.0f} s)"
    )
    assert proxy.connections >= 2
    second = f"<watchdog-2-{user}@example.org>".encode()
    await wait_until(
        lambda: any(second in m.data for m in smtp_sink.received()),
        15,
        "the reply to the second message",
    )
    assert sum(second in m.data for m in smtp_sink.received()) == 1
