"""What a delivery attempt comes to, recipient by recipient (pure rules)."""

from __future__ import annotations

from mailport.actors.settling import settle
from mailport.actors.transports import Reply, Result
from mailport.store import QueuedMail

DAY = 86400.0


def _mail(attempts: int = 1, queued_at: float = 1000.0) -> QueuedMail:
    recipients = ("a@example.test", "b@example.test")
    return QueuedMail(7, "<m@x>", "s@x.test", recipients, b"", False, attempts, "app", queued_at)


def test_a_4xx_defers_only_its_recipient_and_a_5xx_fails_its_own() -> None:
    result = Result((Reply("a@example.test", 250, "ok"), Reply("b@example.test", 451, "later")))
    done = settle(_mail(), result, "relay", lifetime=DAY, now=1001.0)
    assert (done.state, done.pending) == ("deferred", ("b@example.test",))
    assert done.retry_at is not None and 1001.0 < done.retry_at <= 1002.0
    failed = Result((Reply("a@example.test", 250, "ok"), Reply("b@example.test", 550, "gone")))
    done = settle(_mail(), failed, "relay", lifetime=DAY, now=1001.0)
    assert (done.state, done.note, done.pending) == ("sent", "b@example.test: 550 gone", ())


def test_every_recipient_refused_fails_the_message() -> None:
    result = Result.every(("a@example.test", "b@example.test"), 554, "5.7.1 spam")
    done = settle(_mail(), result, "relay", lifetime=DAY, now=1001.0)
    assert done.state == "failed"
    assert [r.outcome for r in done.recipients] == ["failed", "failed"]


def test_past_its_lifetime_a_deferral_becomes_a_failure() -> None:
    result = Result.every(("a@example.test", "b@example.test"), 451, "4.3.0 busy")
    done = settle(_mail(attempts=9), result, "relay", lifetime=DAY, now=1000.0 + DAY + 1)
    assert done.state == "failed"
    assert done.recipients[0].text == "gave up after 9 attempts: 4.3.0 busy"


def test_a_connection_fault_is_retried_within_half_a_minute() -> None:
    result = Result.every(
        ("a@example.test", "b@example.test"), None, "ConnectionRefusedError", connection_failed=True
    )
    done = settle(_mail(attempts=30), result, "relay", lifetime=DAY, now=1001.0)
    assert done.state == "deferred" and done.retry_at is not None
    assert done.retry_at - 1001.0 <= 30.0
    assert done.note == (
        "a@example.test: ConnectionRefusedError; b@example.test: ConnectionRefusedError"
    )


def test_a_refused_recipient_becomes_a_failure_receipt_for_the_application() -> None:
    result = Result(
        (
            Reply("a@example.test", 250, "2.0.0 ok"),
            Reply("b@example.test", 552, "5.2.2 <b@example.test>: mailbox full"),
        )
    )
    done = settle(_mail(), result, "relay", lifetime=DAY, now=1001.0, remote="mx.example:25")
    assert done.receipt is not None
    assert (done.receipt.kind, done.receipt.original_message_id) == ("dsn", "<m@x>")
    assert done.receipt.envelope_id == "mailport.7"
    [refused] = done.receipt.recipients
    assert (refused.recipient, refused.action, refused.status) == (
        "b@example.test",
        "failed",
        "5.2.2",
    )
    assert (refused.reply_code, refused.reason, refused.hard_bounce) == (552, "mailboxfull", False)
    assert refused.remote_mta == "mx.example:25"


def test_a_deferral_gives_no_receipt_and_giving_up_gives_expired() -> None:
    result = Result.every(("a@example.test", "b@example.test"), 451, "4.3.0 busy")
    assert settle(_mail(), result, "relay", lifetime=DAY, now=1001.0).receipt is None
    done = settle(_mail(attempts=9), result, "relay", lifetime=DAY, now=1000.0 + DAY + 1)
    assert done.receipt is not None
    assert [(r.status, r.reason) for r in done.receipt.recipients] == [("4.3.0", "expired")] * 2


def test_a_reply_without_an_enhanced_code_keeps_its_class() -> None:
    words = "Requested action not taken: mailbox unavailable"
    result = Result((Reply("a@example.test", 550, words, "RCPT"),))
    done = settle(_mail(), result, "relay", lifetime=DAY, now=1001.0)
    assert done.receipt is not None
    [r] = done.receipt.recipients
    assert (r.status, r.reply_code, r.reason, r.hard_bounce) == ("5.0.0", 550, "userunknown", True)


def test_the_same_words_after_data_are_a_filter_not_the_address() -> None:
    words = "5.7.1 Unknown user a@example.test"
    result = Result((Reply("a@example.test", 550, words, "DATA"),))
    done = settle(_mail(), result, "relay", lifetime=DAY, now=1001.0)
    assert done.receipt is not None
    [r] = done.receipt.recipients
    assert (r.status, r.reason, r.hard_bounce) == ("5.7.1", "filtered", False)
