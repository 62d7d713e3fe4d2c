"""Real mail through the whole node: Dovecot → InboundConnection → RouterShard → application
→ OutboundConnection → an SMTP server, with the processing guarantee checked on the way."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from email import message_from_bytes
from email.policy import compat32

import pytest

from mailport.cluster.node import Node
from mailport.store import Store
from tests.apps import read_ledger
from tests.corpus import AUTOMATIC_KINDS, corpus_files, expectations, relative
from tests.flow import (
    HEURISTIC_REASONS,
    expected_reply_addresses,
    imap,
    is_auto_submitted,
    msgid,
    pop3,
    stdlib_message,
    wait_until,
)
from tests.servers.dovecot import Dovecot
from tests.servers.smtp_sink import SmtpSink

PROCESSED = "$MailportProcessed"
# Inputs that are not email at all, named one by one: each must be quarantined, not answered.
NOT_EMAIL = {"mime/enmime/mail/erroneous.raw"}


async def _flagged_only_after_commit(
    dovecot: Dovecot, user: str, store: Store, connection: str, done: asyncio.Event
) -> list[str]:
    """Sample the server and the store while mail flows: a message flagged on the server
    must already have its outcome (and its reply) committed. Flags are read first, so a
    message flagged at that moment is finished in any later read of the store."""
    violations: list[str] = []
    while not done.is_set():
        flagged = {uid for uid, f in dovecot.fetch_flags(user).items() if PROCESSED in f}
        rows = await store.rows("inbound", connection=connection)
        finished = {r["dedupe_key"].rsplit(":", 1)[1] for r in rows if r["state"] != "claimed"}
        violations += [f"UID {uid}" for uid in flagged if str(uid) not in finished]
        await asyncio.sleep(0.3)
    return violations


async def test_corpus_over_imap(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink, store: Store, ledger: str
) -> None:
    files = corpus_files("mime", "charsets")
    user = dovecot.new_user("corpus")
    origin = {dovecot.append(user, p.read_bytes()): p for p in files}
    server = dovecot.fetch_all(user)
    assert sorted(server) == sorted(origin)

    config = imap(dovecot, user, "tls", batch_size=100)
    done = asyncio.Event()
    sampler = asyncio.create_task(
        _flagged_only_after_commit(dovecot, user, store, config.name, done)
    )
    started = time.monotonic()
    await node.add_inbound(config)
    try:
        await wait_until(
            lambda: not dovecot.search(user, "INBOX", f"UNKEYWORD {PROCESSED}"),
            240,
            "every message to be flagged",
        )
    finally:
        elapsed = time.monotonic() - started
        done.set()
        violations = await sampler
        await node.remove_inbound(config.name)
    assert violations == []

    inbound = {r["dedupe_key"]: r for r in await store.rows("inbound", connection=config.name)}
    contacts = {r["dedupe_key"]: r for r in await store.rows("contacts", connection=config.name)}
    uid_of = {key: int(key.rsplit(":", 1)[1]) for key in inbound}
    assert sorted(uid_of.values()) == sorted(server)

    # Exactly once at the application: one ledger line per message the application ran for.
    calls = Counter(c["key"] for c in read_ledger(ledger) if c["connection"] == config.name)
    assert [k for k, n in calls.items() if n > 1] == []

    quarantined = {
        relative(origin[uid_of[k]]) for k, r in inbound.items() if r["state"] == "quarantined"
    }
    assert quarantined == NOT_EMAIL
    for key, row in inbound.items():
        if row["state"] == "quarantined":
            assert contacts[key]["reason"], key

    outbound = {r["source_key"]: r for r in await store.rows("outbound")}
    await wait_until(
        lambda: all(
            outbound[k]["message_id"] in _sink_ids(smtp_sink) for k in outbound if k in inbound
        ),
        60,
        "replies at the sink",
    )
    received = {
        msgid(message_from_bytes(m.data, policy=compat32)["Message-ID"]): m
        for m in smtp_sink.received()
    }

    answered = unanswerable = heuristic = receipts = 0
    for key, row in inbound.items():
        if row["state"] == "quarantined":
            continue
        raw = origin[uid_of[key]].read_bytes()
        name = relative(origin[uid_of[key]])
        if contacts[key]["status"] == "receipt":
            # A report or an auto-reply: kept for the application that sent what it answers
            # (here nothing we sent: orphaned), never run through the routing rules.
            assert is_auto_submitted(raw) or name in REPLIES_BY_SUBJECT_ONLY, name
            assert (calls[key], key in outbound) == (0, False), name
            assert contacts[key]["reason"].endswith("orphaned"), name
            receipts += 1
            continue
        assert calls[key] == 1, name
        expected = [] if is_auto_submitted(raw) else expected_reply_addresses(raw)
        if not expected or contacts[key]["status"] == "unanswerable":
            assert contacts[key]["status"] == "unanswerable", name
            assert key not in outbound, name
            reason = contacts[key]["reason"]
            if expected:  # declined although the RFCs' letter allows an answer: say why
                assert any(h in reason for h in HEURISTIC_REASONS), (name, reason)
                heuristic += 1
            assert reason, name
            unanswerable += 1
            continue
        reply = received[outbound[key]["message_id"]]
        assert [r.lower() for r in reply.rcpt_tos] == expected, name
        headers = message_from_bytes(reply.data, policy=compat32)
        original_id = msgid(stdlib_message(raw)["Message-ID"])
        if original_id:
            assert msgid(headers["In-Reply-To"]) == original_id, name
            assert original_id in str(headers["References"]), name
        answered += 1

    print(
        f"\ncorpus over IMAP: {len(files)} messages, {answered} answered, "
        f"{unanswerable} unanswerable ({heuristic} by helpdesk heuristics), "
        f"{receipts} receipts (orphaned), "
        f"{len(quarantined)} quarantined, "
        f"{sum(calls.values())} application calls, all flagged in {elapsed:.1f} s"
    )
    assert answered + unanswerable + receipts + len(quarantined) == len(files)


# Auto-replies that only their subject tells: Outlook's Polish "Automatic reply:".
REPLIES_BY_SUBJECT_ONLY = {"charsets/php-mime-mail-parser/issue212"}


def _sink_ids(sink: SmtpSink) -> set[str | None]:
    return {
        msgid(message_from_bytes(m.data, policy=compat32)["Message-ID"]) for m in sink.received()
    }


async def test_corpus_subset_over_pop3(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink, store: Store
) -> None:
    files = corpus_files("charsets")[:25]
    user = dovecot.new_user("pop")
    dovecot.append_many(user, [p.read_bytes() for p in files])
    config = pop3(dovecot, user, "tls")
    await node.add_inbound(config)
    try:
        await wait_until(
            lambda: dovecot.message_count(user) == 0, 60, "POP3 to delete every processed message"
        )
    finally:
        await node.remove_inbound(config.name)
    contacts = await store.rows("contacts", connection=config.name)
    assert len(contacts) == len(files)
    assert all(r["dedupe_key"].startswith(f"{config.name}:") for r in contacts)
    outbound = {r["source_key"]: r for r in await store.rows("outbound")}
    expected = {
        p.name: (
            [] if is_auto_submitted(p.read_bytes()) else expected_reply_addresses(p.read_bytes())
        )
        for p in files
    }
    replies = [r for r in contacts if r["dedupe_key"] in outbound]
    assert len(replies) == sum(1 for v in expected.values() if v)
    await wait_until(
        lambda: {outbound[r["dedupe_key"]]["message_id"] for r in replies} <= _sink_ids(smtp_sink),
        30,
        "POP3 replies at the sink",
    )
    print(f"\ncorpus subset over POP3: {len(files)} messages, {len(replies)} answered")
    assert json.loads(replies[0]["recipients"]) is not None


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
async def test_imap_security_modes(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink, store: Store, security: str
) -> None:
    user = dovecot.new_user(f"imap{security}")
    raw = (
        f"From: Ann <ann@example.org>\r\nTo: {user}@example.test\r\n"
        f"Subject: over {security}\r\nMessage-ID: <{user}@example.org>\r\n\r\nhello\r\n"
    )
    dovecot.append(user, raw.encode())
    config = imap(dovecot, user, security)
    await node.add_inbound(config)
    try:
        await wait_until(
            lambda: not dovecot.search(user, "INBOX", f"UNKEYWORD {PROCESSED}"),
            30,
            f"IMAP over {security}",
        )
    finally:
        await node.remove_inbound(config.name)
    reply = await _reply_to(smtp_sink, f"<{user}@example.org>")
    assert reply.rcpt_tos == ("ann@example.org",)
    subject = message_from_bytes(reply.data, policy=compat32)["Subject"]
    assert subject == f"Re: over {security}"


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
async def test_pop3_security_modes(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink, security: str
) -> None:
    user = dovecot.new_user(f"pop{security}")
    raw = (
        f"From: Bo <bo@example.org>\r\nTo: {user}@example.test\r\n"
        f"Subject: pop over {security}\r\nMessage-ID: <{user}@example.org>\r\n\r\nhi\r\n"
    )
    dovecot.append(user, raw.encode())
    config = pop3(dovecot, user, security)
    await node.add_inbound(config)
    try:
        await wait_until(lambda: dovecot.message_count(user) == 0, 30, f"POP3 over {security}")
    finally:
        await node.remove_inbound(config.name)
    reply = await _reply_to(smtp_sink, f"<{user}@example.org>")
    assert reply.rcpt_tos == ("bo@example.org",)


async def _reply_to(sink: SmtpSink, original: str) -> object:
    async def found() -> bool:
        return any(_in_reply_to(m.data) == original for m in sink.received())

    await wait_until(found, 15, f"a reply to {original}")
    return next(m for m in sink.received() if _in_reply_to(m.data) == original)


def _in_reply_to(data: bytes) -> str | None:
    return msgid(message_from_bytes(data, policy=compat32)["In-Reply-To"])


async def test_automatic_mail_gets_no_answer_over_imap(
    node: Node, dovecot: Dovecot, smtp_sink: SmtpSink, store: Store
) -> None:
    known = expectations()
    files = [
        *corpus_files("autoreplies", "receipts", "feedback", "negatives"),
        *corpus_files("bounces/flanker", "bounces/mimekit"),
    ]
    user = dovecot.new_user("automatic")
    origin = {dovecot.append(user, p.read_bytes()): p for p in files}
    config = imap(dovecot, user, "tls", batch_size=100)
    await node.add_inbound(config)
    try:
        await wait_until(
            lambda: not dovecot.search(user, "INBOX", f"UNKEYWORD {PROCESSED}"),
            120,
            "every automatic message to be flagged",
        )
    finally:
        await node.remove_inbound(config.name)
    contacts = {
        int(r["dedupe_key"].rsplit(":", 1)[1]): r
        for r in await store.rows("contacts", connection=config.name)
    }
    assert sorted(contacts) == sorted(origin)
    answered = {relative(origin[uid]) for uid, c in contacts.items() if c["status"] == "handled"}
    automatic = {
        relative(p) for p in files if known.get(relative(p), {}).get("kind") in AUTOMATIC_KINDS
    }
    print(
        f"\nautomatic mail over IMAP: {len(files)} messages, {len(automatic)} automatic by "
        f"the sources, {len(answered)} answered: {sorted(answered)}"
    )
    assert answered & automatic == set()
    assert "negatives/sisimai/is-not-bounce-02.eml" in answered
