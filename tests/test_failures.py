"""Bad input is data, not a crash: failing applications, wrong passwords, untrusted servers."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import ray

from mailport.actors.inbound import InboundConnection
from mailport.cluster.node import Node
from mailport.config.models import MaildirOutbound, Settings, SmtpListenerInbound
from mailport.config.models import Node as NodeSettings
from mailport.config.models import Store as StoreSettings
from mailport.config.secrets import SecretSource
from mailport.store import Store
from tests.apps import read_ledger, receipt_ledger
from tests.conftest import AUTOMATIC_REPLIES
from tests.flow import imap, msgid, wait_until
from tests.servers.dovecot import Dovecot
from tests.servers.smtp_sink import SmtpSink
from tests.servers.sockets import free_port


async def _state(node: Node, name: str) -> dict[str, object]:
    for answer in await node.supervise():
        if answer["connection"] == name:
            return answer
    return {}


async def test_a_failing_application_quarantines_the_message(
    node: Node, dovecot: Dovecot, store: Store
) -> None:
    user = dovecot.new_user("explode")
    dovecot.append(
        user,
        b"From: ann@example.org\r\nTo: explode@example.test\r\n"
        b"Subject: boom\r\nMessage-ID: <boom@example.org>\r\n\r\nx\r\n",
    )
    config = imap(dovecot, user, "tls")
    await node.add_inbound(config)
    try:
        await wait_until(
            lambda: dovecot.search(user, "INBOX", "KEYWORD $MailportQuarantined"),
            30,
            "the message to be flagged as quarantined",
        )
    finally:
        await node.remove_inbound(config.name)
    [row] = await store.rows("quarantine", connection=config.name)
    assert row["reason"].startswith(
        "application explode raised RuntimeError: this application always fails"
    )
    assert b"Subject: boom" in row["raw"]
    [contact] = await store.rows("contacts", connection=config.name)
    assert (contact["status"], contact["application"]) == ("quarantined", "explode")
    assert await store.rows("outbound", source_key=row["dedupe_key"]) == []
    [alarm] = [a for a in await store.open_alarms() if a["key"] == f"quarantine:{config.name}"]
    assert alarm["severity"] == "warning"
    assert "application explode raised RuntimeError" in alarm["text"]


async def test_a_wrong_password_is_reported_without_the_password(
    node: Node, dovecot: Dovecot, store: Store
) -> None:
    user = dovecot.new_user("wrongpw")
    dovecot.append(user, b"From: a@example.org\r\nSubject: waits\r\n\r\nx\r\n")
    secret = dovecot.root / "wrong-password"
    secret.write_text("not-the-password-4711")
    config = imap(dovecot, user, "tls", password=SecretSource(file=secret))
    await node.add_inbound(config)
    try:

        async def failing() -> bool:
            state = await _state(node, config.name)
            return state.get("state") == "retrying" and bool(state.get("error"))

        await wait_until(failing, 30, "the connection to report its failure")
        state = await _state(node, config.name)
        assert "LOGIN failed" in str(state["error"])
        assert "not-the-password-4711" not in str(state)

        async def alarmed() -> bool:
            return any(a["key"] == f"inbound:{config.name}" for a in await store.open_alarms())

        await wait_until(alarmed, 30, "an alarm for the operator")
        [alarm] = [a for a in await store.open_alarms() if a["key"] == f"inbound:{config.name}"]
        assert alarm["severity"] == "critical"
        assert "LOGIN failed" in alarm["text"]
        assert "not-the-password-4711" not in alarm["text"]
        await asyncio.sleep(1)
        assert dovecot.search(user, "INBOX", "KEYWORD $MailportProcessed") == []
    finally:
        await node.remove_inbound(config.name)


async def test_an_untrusted_certificate_is_refused(node: Node, dovecot: Dovecot) -> None:
    user = dovecot.new_user("untrusted")
    config = imap(dovecot, user, "tls").model_copy(update={"ca_file": None})
    await node.add_inbound(config)
    try:

        async def refused() -> bool:
            return "CERTIFICATE_VERIFY_FAILED" in str(
                (await _state(node, config.name)).get("error")
            )

        await wait_until(refused, 30, "certificate verification to fail")
    finally:
        await node.remove_inbound(config.name)


async def test_mx_mode_spools_then_answers(node: Node, smtp_sink: SmtpSink, store: Store) -> None:
    config = SmtpListenerInbound(kind="smtp-listener", name="mx-test", port=free_port())
    await node.add_inbound(config)
    try:

        async def listening() -> bool:
            return (await _state(node, config.name)).get("state") == "idle"

        await wait_until(listening, 30, "the SMTP listener")
        message = EmailMessage()
        message["From"] = "Dana <dana@example.org>"
        message["To"] = "support@example.com"
        message["Subject"] = "Über den Vertrag"
        message["Message-ID"] = "<mx-1@example.org>"
        message.set_content("Grüße")
        with smtplib.SMTP("127.0.0.1", config.port) as client:
            assert client.send_message(message) == {}

        def replied() -> bool:
            return any(b"In-Reply-To: <mx-1@example.org>" in m.data for m in smtp_sink.received())

        await wait_until(replied, 15, "the reply to the MX message")

        # A bounce arrives with the null reverse path and an ordinary-looking From.
        bounce = EmailMessage()
        bounce["From"] = "Customer <customer@example.org>"
        bounce["To"] = "support@example.com"
        bounce["Subject"] = "Your message"
        bounce["Message-ID"] = "<mx-null@example.org>"
        bounce.set_content("could not deliver")
        with smtplib.SMTP("127.0.0.1", config.port) as client:
            client.send_message(bounce, from_addr="<>")

        async def recorded() -> bool:
            rows = await store.rows("contacts", message_id="<mx-null@example.org>")
            return bool(rows)

        await wait_until(recorded, 15, "the null-sender message to be processed")
    finally:
        await node.remove_inbound(config.name)
    reply = next(m for m in smtp_sink.received() if b"<mx-1@example.org>" in m.data)
    assert reply.rcpt_tos == ("dana@example.org",)
    [null] = await store.rows("contacts", message_id="<mx-null@example.org>")
    assert (null["status"], null["reason"]) == (
        "unanswerable",
        "automatic mail is never answered: null sender (Return-Path: <>)",
    )
    assert not any(b"<mx-null@example.org>" in m.data for m in smtp_sink.received())
    rows = await store.rows("inbound", connection=config.name)
    assert [(r["state"], r["raw"]) for r in rows] == [("done", None)] * 2  # spool copies gone
    assert msgid("<mx-1@example.org>") == "<mx-1@example.org>"


async def test_a_recipient_the_server_refuses_is_recorded_and_handed_to_the_application(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink, store: Store, ledger: Path
) -> None:
    user = dovecot.new_user("partial")
    dovecot.append(
        user,
        b"From: Ann <ann@example.org>\r\n"
        b"Reply-To: ann@example.org, refused@example.org\r\n"
        b"Subject: two of us\r\nMessage-ID: <partial@example.org>\r\n\r\nhi\r\n",
    )
    config = imap(dovecot, user, "tls")
    await node.add_inbound(config)
    try:

        async def sent() -> bool:
            rows = await store.rows("outbound", state="sent")
            bodies = [await _data(store, r) for r in rows]
            return any(b"<partial@example.org>" in body for body in bodies)

        await wait_until(sent, 30, "the reply to be sent")
    finally:
        await node.remove_inbound(config.name)
    [row] = [
        r for r in await store.rows("outbound") if b"<partial@example.org>" in await _data(store, r)
    ]
    assert row["state"] == "sent"
    assert row["last_error"] == "refused@example.org: 550 5.1.1 no such user"
    history = [(a["recipient"], a["outcome"], a["code"]) for a in await store.attempts(row["id"])]
    assert sorted(history) == [
        ("ann@example.org", "sent", 250),
        ("refused@example.org", "failed", 550),
    ]
    [delivered] = [m for m in smtp_sink.received() if b"<partial@example.org>" in m.data]
    assert delivered.rcpt_tos == ("ann@example.org",)

    # The refusal reaches the sending application's receipt handler, once.
    def handed() -> list[dict[str, Any]]:
        return [
            c
            for c in read_ledger(receipt_ledger(str(ledger)))
            if c.get("message_id") == row["message_id"]
        ]

    await wait_until(lambda: bool(handed()), 10, "the receipt handler to run")
    [call] = handed()
    assert (call["application"], call["source"]) == ("recorder", "smtp")
    assert call["receipt"]["kind"] == "dsn"
    assert call["receipt"]["original_message_id"] == row["message_id"]
    assert call["receipt"]["recipients"] == [
        {
            "recipient": "refused@example.org",
            "action": "failed",
            "status": "5.1.1",
            "reply_code": 550,
            "reason": "userunknown",
            "hard_bounce": True,
            "diagnostic": "5.1.1 no such user",
            "remote_mta": f"{smtp_sink.host}:{smtp_sink.port}",
        }
    ]
    [stored] = await store.receipts(outbound_id=row["id"])
    assert stored.state == "handled"


async def _data(store: Store, row: dict[str, Any]) -> bytes:
    return await store.outbound_data(row["message_id"]) or b""


async def test_automatic_replies_to_one_sender_stop_at_the_daily_limit(
    node: Node, smtp_sink: SmtpSink, store: Store
) -> None:
    """An autoresponder that the headers do not reveal would answer every acknowledgement:
    past the limit, its mail is recorded as unanswerable and nothing more is sent to it."""
    sender = f"robot-{free_port()}@example.org"
    config = SmtpListenerInbound(kind="smtp-listener", name=f"mx-{free_port()}", port=free_port())
    await node.add_inbound(config)
    try:

        async def listening() -> bool:
            return (await _state(node, config.name)).get("state") == "idle"

        await wait_until(listening, 30, "the SMTP listener")
        with smtplib.SMTP("127.0.0.1", config.port) as client:
            for n in range(AUTOMATIC_REPLIES + 1):
                message = EmailMessage()
                message["From"] = sender
                message["To"] = "support@example.com"
                message["Subject"] = f"Re: ticket {n}"
                message["Message-ID"] = f"<robot-{n}-{sender}>"
                message.set_content("thanks")
                client.send_message(message)

        async def all_recorded() -> bool:
            rows = [r for r in await store.rows("contacts") if r["sender"] == sender]
            return len(rows) == AUTOMATIC_REPLIES + 1

        await wait_until(all_recorded, 60, "every message to be processed")
    finally:
        await node.remove_inbound(config.name)
    rows = [r for r in await store.rows("contacts") if r["sender"] == sender]
    statuses = [r["status"] for r in sorted(rows, key=lambda r: r["id"])]
    assert statuses.count("handled") == AUTOMATIC_REPLIES
    [refused] = [r for r in rows if r["status"] == "unanswerable"]
    assert refused["reason"] == (
        f"the limit of {AUTOMATIC_REPLIES} automatic replies a day to this sender is reached"
    )


async def test_an_inbound_connection_says_why_it_cannot_start(
    ray_session: None, tmp_path: Path
) -> None:
    """Its process cannot open the store (the node's password did not reach it, say): the
    connection shows the error and keeps trying, rather than "starting" with no word."""
    listener = SmtpListenerInbound(kind="smtp-listener", name="mx-nostore", port=free_port())
    settings = Settings(
        node=NodeSettings(data_dir=tmp_path),
        store=StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"),
        inbound=(listener,),
        outbound=(MaildirOutbound(kind="maildir", name="outbox", path=tmp_path / "outbox"),),
    )
    actor = InboundConnection.remote(settings, listener, 1, [])  # type: ignore[attr-defined]
    try:
        want = ("cannot start", "OperationalError: unable to open database file")
        for _ in range(100):
            answer = await actor.ensure_running.remote()
            if (answer["state"], answer["error"]) == want:
                break
            await asyncio.sleep(0.1)
        assert (answer["state"], answer["error"]) == want
    finally:
        ray.kill(actor)


async def test_the_node_raises_the_alarm_for_a_connection_that_cannot_start(
    tmp_path: Path,
) -> None:
    settings = Settings(
        node=NodeSettings(data_dir=tmp_path),
        store=StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"),
        outbound=(MaildirOutbound(kind="maildir", name="outbox", path=tmp_path / "outbox"),),
    )
    node = Node(settings)
    node.store = store = await Store.open(settings.store.url)
    failing = {"connection": "mx", "state": "cannot start", "error": "InvalidPasswordError: x"}
    try:
        for _ in range(3):  # about three seconds of supervision
            await node._watch_starts([failing])
        [alarm] = await store.open_alarms()
        assert (alarm["key"], alarm["severity"]) == ("start:mx", "critical")
        assert alarm["text"] == f"mx cannot start on node {node.name}: InvalidPasswordError: x"
        await node._watch_starts([{"connection": "mx", "state": "idle", "error": None}])
        assert await store.open_alarms() == []
    finally:
        await store.close()
