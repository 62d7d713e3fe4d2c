"""Receipts that come back by mail reach the application that sent the message they answer.

A message is queued for the `recorder` application and delivered to the sink; then a DSN,
an auto-reply and a read receipt for it arrive at the node's SMTP listener, as they would
from the world. Each must be tied to the message, written on its timeline, and handed to
the recorder's receipt handler once; a report about nothing we sent is kept as orphaned."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path
from typing import Any

from mailport.cluster.node import Node
from mailport.config.models import SmtpListenerInbound
from mailport.store import Outgoing, Store
from tests.apps import read_ledger, receipt_ledger
from tests.flow import wait_until
from tests.servers.smtp_sink import SmtpSink
from tests.servers.sockets import free_port

SENDER = "support@mailport.test"


def _dsn(envelope_id: str, message_id: str, recipient: str) -> bytes:
    """A Postfix-style bounce, as Postfix words it."""
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: {SENDER}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Message-ID: <bounce-1@mx.example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\n"
        f"<{recipient}>: host mx.example.net[192.0.2.1] said: 550 5.1.1 <{recipient}>:\r\n"
        "    Recipient address rejected: User unknown (in reply to RCPT TO command)\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\nOriginal-Envelope-Id: {envelope_id}\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Remote-MTA: dns; mx.example.net\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User"
        " unknown\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SENDER}\r\nTo: {recipient}\r\nMessage-ID: {message_id}\r\n\r\n--B--\r\n"
    ).encode()


def _autoreply(message_id: str) -> bytes:
    return (
        "From: Ann <ann@example.org>\r\n"
        f"To: {SENDER}\r\n"
        "Subject: Automatic reply: your ticket\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"In-Reply-To: {message_id}\r\n"
        "Message-ID: <away-1@example.org>\r\n\r\n"
        "I am out of the office until Monday.\r\n"
    ).encode()


def _mdn(message_id: str) -> bytes:
    return (
        "From: Ann <ann@example.org>\r\n"
        f"To: {SENDER}\r\n"
        "Subject: Read: your ticket\r\n"
        "Message-ID: <read-1@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="M"\r\n'
        "\r\n--M\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
        "--M\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: ann-pc; Mail 1.0\r\nFinal-Recipient: rfc822; ann@example.org\r\n"
        f"Original-Message-ID: {message_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--M--\r\n"
    ).encode()


async def test_reports_by_mail_reach_the_sending_application(
    node: Node, smtp_sink: SmtpSink, store: Store, ledger: Path
) -> None:
    tag = str(time.time_ns())
    message_id = f"<ticket-{tag}@example.com>"
    body = f"From: {SENDER}\r\nTo: ann@example.org\r\nMessage-ID: {message_id}\r\n\r\nhi\r\n"
    await store.enqueue(
        [Outgoing(message_id, SENDER, ("ann@example.org",), body.encode(), False, "recorder")]
    )
    [row] = await store.rows("outbound", message_id=message_id)

    async def sent() -> bool:
        return (await store.rows("outbound", message_id=message_id))[0]["state"] == "sent"

    await wait_until(sent, 30, "the message to be sent")

    config = SmtpListenerInbound(kind="smtp-listener", name=f"mx-{tag}", port=free_port())
    await node.add_inbound(config)
    try:
        await wait_until(lambda: _listening(config.port), 30, "the SMTP listener")
        with smtplib.SMTP("127.0.0.1", config.port) as client:
            for raw in (
                _dsn(f"mailport.{row['id']}", message_id, "ann@example.org"),
                _autoreply(message_id),
                _mdn(message_id),
                _dsn("mailport.999999999", "<never-sent@example.com>", "bob@example.org"),
            ):
                client.sendmail("<>", [SENDER], raw)

        def handed() -> list[dict[str, Any]]:
            lines = read_ledger(receipt_ledger(str(ledger)))
            return [c for c in lines if c["message_id"] == message_id]

        await wait_until(lambda: len(handed()) == 3, 30, "three receipts at the handler")
    finally:
        await node.remove_inbound(config.name)

    calls = {c["receipt"]["kind"]: c for c in handed()}
    assert sorted(calls) == ["autoreply", "dsn", "mdn"]
    assert {c["source"] for c in calls.values()} == {"mail"}
    assert {c["application"] for c in calls.values()} == {"recorder"}
    [bounced] = calls["dsn"]["receipt"]["recipients"]
    assert (bounced["recipient"], bounced["status"], bounced["reason"]) == (
        "ann@example.org",
        "5.1.1",
        "userunknown",
    )
    assert calls["dsn"]["receipt"]["envelope_id"] == f"mailport.{row['id']}"
    assert calls["mdn"]["receipt"]["disposition"] == "displayed"

    [after] = await store.rows("outbound", message_id=message_id)
    assert after["state"] == "failed"
    assert after["last_error"].startswith("ann@example.org: 5.1.1 userunknown")
    events = [e["event"] for e in await store.timeline(row["id"])]
    assert events[0] == "attempt"
    assert sorted(events[1:]) == ["autoreply", "dsn", "mdn"]

    orphans = [
        r
        for r in await store.receipts(state="orphaned")
        if [x.recipient for x in r.receipt.recipients] == ["bob@example.org"]
    ]
    assert [(o.application, o.outbound_id) for o in orphans] == [(None, None)]


def _listening(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=1):
            return True
    except OSError:
        return False
