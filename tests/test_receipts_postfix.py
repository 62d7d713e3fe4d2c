"""Real DSNs from a real MTA: mailport sends through a private Postfix that delivers to
Dovecot over LMTP; Postfix's own reports come back to the sender's mailbox, are fetched over
IMAP, tied to the message they answer and handed to the application that sent it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailport.cluster.node import Node
from mailport.config.models import DsnRequest, SmtpOutbound
from mailport.store import Outgoing, Store
from tests.apps import read_ledger, receipt_ledger
from tests.flow import imap, wait_until
from tests.servers.dovecot import UNKNOWN_PREFIX, Dovecot
from tests.servers.postfix import Postfix

DOMAIN = "example.test"


@pytest.fixture(scope="module")
def postfix(dovecot: Dovecot) -> Iterator[Postfix]:
    server = Postfix.start(dovecot.lmtp_port, domain=DOMAIN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def relay(node: Node, postfix: Postfix) -> str:
    """An outbound connection through Postfix that asks for every kind of DSN; it carries
    the mail of example.test senders only, so the suite's other mail is not sent there."""
    config = SmtpOutbound(
        kind="smtp",
        name="postfix",
        host=postfix.host,
        port=postfix.port,
        security="none",
        pool_size=2,
        sender_domains=[DOMAIN],
        dsn=DsnRequest(notify=("SUCCESS", "FAILURE", "DELAY"), ret="HDRS"),
    )
    await node.add_outbound(config)
    return config.name


async def test_postfix_reports_reach_the_sending_application(
    node: Node, dovecot: Dovecot, store: Store, ledger: Path, relay: str
) -> None:
    sender = dovecot.new_user("sender", domain=DOMAIN)
    known = dovecot.new_user("customer", domain=DOMAIN)
    unknown = dovecot.new_user(UNKNOWN_PREFIX, domain=DOMAIN)
    tag = time.time_ns()
    bounced, delivered = f"<bounce-{tag}@{DOMAIN}>", f"<ok-{tag}@{DOMAIN}>"
    await store.enqueue(
        [
            Outgoing(m, sender, (to,), _message(m, sender, to), False, "recorder")
            for m, to in ((bounced, unknown), (delivered, known))
        ]
    )
    config = imap(dovecot, sender, "tls")
    await node.add_inbound(config)
    try:

        def handed() -> dict[str, dict[str, Any]]:
            calls = read_ledger(receipt_ledger(str(ledger)))
            return {c["message_id"]: c for c in calls if c["message_id"] in (bounced, delivered)}

        await wait_until(lambda: len(handed()) == 2, 60, "Postfix's two reports at the handler")
    finally:
        await node.remove_inbound(config.name)

    failure, success = handed()[bounced], handed()[delivered]
    assert (failure["source"], failure["application"]) == ("mail", "recorder")
    assert failure["receipt"]["kind"] == "dsn"
    [refused] = failure["receipt"]["recipients"]
    assert (refused["recipient"], refused["action"], refused["status"]) == (
        unknown,
        "failed",
        "5.1.1",
    )
    assert (refused["reason"], refused["hard_bounce"]) == ("userunknown", True)
    [arrived] = success["receipt"]["recipients"]
    assert (arrived["recipient"], arrived["action"]) == (known, "relayed")  # LMTP: relayed
    assert arrived["status"].startswith("2.")

    rows = {r["message_id"]: r for r in await store.rows("outbound", connection=relay)}
    assert rows[bounced]["state"] == "failed"
    assert rows[bounced]["last_error"].startswith(f"{unknown}: 5.1.1 userunknown")
    assert failure["receipt"]["envelope_id"] == f"mailport.{rows[bounced]['id']}"
    assert rows[delivered]["state"] == "delivered"
    events = [e["event"] for e in await store.timeline(rows[bounced]["id"])]
    assert events == ["attempt", "dsn"]
    # The customer got the message itself.
    assert any(delivered.encode() in p.read_bytes() for p in _inbox(dovecot, known))


def _message(message_id: str, sender: str, to: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: your ticket\r\nMessage-ID: {message_id}\r\n"
        "\r\nWe have your ticket.\r\n"
    ).encode()


def _inbox(dovecot: Dovecot, user: str) -> list[Path]:
    maildir = dovecot.maildir(user)
    return [p for sub in ("new", "cur") for p in (maildir / sub).glob("*") if p.is_file()]
