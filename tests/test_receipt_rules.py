"""The pure rules under receipts: codes in a server's words, reasons, mbox files."""

from __future__ import annotations

import pytest

from mailport.mail.mbox import messages
from mailport.mail.receipts import classify, reason_for, reply_code_in, status_in
from mailport.mail.receipts.codes import statuses_in
from mailport.mail.receipts.dsn import DIAGNOSTIC_CHARS


def test_where_replies_nest_the_last_is_the_remote_servers() -> None:
    said = (
        "554 4.4.7 Message expired: unable to deliver in 840 minutes."
        "<421 4.4.2 Connection timed out"
    )
    assert statuses_in(said) == ["4.4.7", "4.4.2"]
    assert reply_code_in(said) == 421


def test_sendmails_own_retry_note_is_not_a_reply() -> None:
    said = (
        "<<< 550 <a@b.example>... User unknown "
        "421 b.example (smtp)... Deferred: Connection timed out"
    )
    assert reply_code_in(said) == 550


def test_codes_that_are_not_smtp_replies_do_not_count() -> None:
    assert reply_code_in("522 5.2.0 Delivery failed: Over quota") is None
    assert reply_code_in("exit status 255") is None
    assert status_in("version 10.4.7.2") == ""
    assert status_in("ERROR_CODE :5.2.1 <a@b>") == "5.2.1"


@pytest.mark.parametrize(
    ("status", "code", "words", "reason"),
    [
        (
            "5.1.1",
            550,
            "5.1.1 <a@b.example>: Recipient address rejected: User unknown"
            " (in reply to RCPT TO command)",
            "userunknown",
        ),
        (
            "5.0.0",
            550,
            "550 Unknown user a@b.example (in reply to end of DATA command)",
            "filtered",
        ),
        ("5.2.2", 552, "Mailbox full", "mailboxfull"),
        ("5.1.1", 550, "5.1.1 mailbox is full", "mailboxfull"),
        ("5.2.3", 552, "Message size exceeds fixed maximum message size", "exceedlimit"),
        (
            "5.7.1",
            550,
            "Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org",
            "blocked",
        ),
        ("5.7.1", 550, "Message rejected as spam by Content Filtering", "spamdetected"),
        ("4.4.7", None, "Delivery time expired", "expired"),
        (
            "5.4.4",
            None,
            "Host or domain name not found. Name service error for name=x.example type=AAAA",
            "hostunknown",
        ),
        (
            "5.7.26",
            550,
            "Unauthenticated email from x.example is not accepted due to domain's DMARC policy",
            "authfailure",
        ),
        ("5.0.0", None, "", "onhold"),
        ("2.0.0", 250, "Ok: queued", "delivered"),
        # Unknown-user words that do not say they answered RCPT: a filter's refusal.
        ("5.0.0", None, "Returned mail: [User unknown]", "filtered"),
        # ... unless they are a mailbox system's own, which knows its users.
        ("5.0.0", None, "User jo (jo@b.example) not listed in Domino Directory", "userunknown"),
        ("5.0.0", None, "Invalid final delivery userid: jo@b.example", "userunknown"),
        (
            "5.0.0",
            554,
            "554 delivery error: dd This user doesn't have a b.example account",
            "userunknown",
        ),
        # A multi-line reply's continuation codes do not split the server's sentence.
        (
            "5.7.1",
            550,
            "550-5.7.1 [192.0.2.1] Messages with multiple 550 5.7.1 addresses in From: header"
            " are not accepted.",
            "notcompliantrfc",
        ),
        # A pipe address says where the mail went, not why it failed.
        (
            "5.5.0",
            554,
            '554 "|exec /usr/bin/procmail -f- #jo"... Service unavailable',
            "systemerror",
        ),
        ("5.1.1", None, 'procmail: Couldn\'t create "/var/mail/jo"', "mailererror"),
        ("5.0.0", None, "The email account that you tried to reach does not exist.", "filtered"),
    ],
)
def test_reasons(status: str, code: int | None, words: str, reason: str) -> None:
    assert reason_for(status, code, words) == reason


def test_the_reporting_mtas_reading_of_the_status_ranks_with_the_servers_words() -> None:
    said = "550 5.2.1 <jo@b.example>... User Unknown"
    assert reason_for("5.2.1", 550, said) == "filtered"
    assert reason_for("5.2.1", 550, said, reading="mailbox disabled, not accepting") == "suspend"
    # A bare name of the class hints at nothing: time ran out while the MTA retried.
    reading = "other or undefined network or routing status"
    assert reason_for("4.4.0", None, "", "delayed", "will retry", reading) == "expired"


@pytest.mark.parametrize(
    ("exit_status", "reason"),
    [("255", "mailererror"), ("77", "systemerror"), ("75", "mailererror")],
)
def test_a_local_programs_exit_status_says_whether_the_system_failed_it(
    exit_status: str, reason: str
) -> None:
    report = (
        "From: MAILER-DAEMON@b.example\nSubject: Returned mail\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nfailed\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; b.example\n\n"
        f"Final-Recipient: rfc822; jo@b.example\nAction: failed\nStatus: 5.3.0\n"
        f"Diagnostic-Code: X-Unix; {exit_status}\n\n--b--\n"
    )
    [jo] = classify(report.encode()).recipients
    assert jo.reason == reason


def test_a_diagnostic_longer_than_any_server_reply_is_cut_and_still_read() -> None:
    padding = "x" * 1_000_000  # a broken or hostile report: the text after the reply is noise
    report = (
        "From: MAILER-DAEMON@b.example\nSubject: Returned mail\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nfailed\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; b.example\n\n"
        "Final-Recipient: rfc822; jo@b.example\nAction: failed\nStatus: 5.1.1\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <jo@b.example>: no such user {padding}\n\n--b--\n"
    )
    [jo] = classify(report.encode()).recipients
    assert (jo.reason, jo.hard_bounce) == ("userunknown", True)
    assert jo.diagnostic.startswith("550 5.1.1 <jo@b.example>: no such user xxx")
    assert len(jo.diagnostic) == DIAGNOSTIC_CHARS and jo.diagnostic.endswith("…")


def test_an_mbox_file_is_its_messages_and_any_other_file_one() -> None:
    box = (
        b"From a@b Thu Apr 29 23:34:45 2015\nSubject: one\n\n>From here\n\n"
        b"From c@d Fri Apr 30 00:00:00 2015\nSubject: two\n\nx\n"
    )
    assert messages(box) == [b"Subject: one\n\nFrom here\n", b"Subject: two\n\nx\n"]
    assert messages(b"Subject: one\n\nbody\n") == [b"Subject: one\n\nbody\n"]
    # No blank line before the next "From " line (rhost-cox-01): its asctime date marks it.
    tight = b"From a@b Thu Jul  2 12:05:05 2020\nSubject: one\n\nhi\nFrom me, hello\n--b--\n"
    tight += b"From c@d  Thu Jul  2 12:05:05 2020\nSubject: two\n\nx\n"
    assert messages(tight) == [
        b"Subject: one\n\nhi\nFrom me, hello\n--b--\n",
        b"Subject: two\n\nx\n",
    ]


def _bounce(body: str, subject: str = "Returned mail: see transcript for details") -> bytes:
    head = (
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.a.example>\n"
        "To: sender@a.example\nReturn-Path: <>\n"
        f"Subject: {subject}\n\n"
    )
    return (head + body).encode()


def test_each_recipient_of_a_sendmail_transcript_has_its_own_dialogue() -> None:
    receipt = classify(
        _bounce(
            "   ----- Transcript of session follows -----\n"
            "While talking to mx.b.example:\n"
            ">>> MAIL From:<sender@a.example>\n"
            "<<< 550 Insecure Mail Relay\n"
            "554 <one@b.example>... Remote protocol error\n"
            "550 c.example (smtp)... 550 Host unknown\n"
            "554 <two@c.example>... 550 Host unknown (Authoritative answer from name server)\n"
            "   ----- Unsent message follows -----\n"
            "To: one@b.example\n\nhello\n"
        )
    )
    [one, two] = receipt.recipients
    assert (one.recipient, one.reply_code, one.reason) == ("one@b.example", 550, "norelaying")
    assert (two.recipient, two.reason) == ("two@c.example", "hostunknown")


def test_the_quoted_header_fields_of_the_failed_message_name_nobody_who_failed() -> None:
    receipt = classify(
        _bounce(
            "Your message\n"
            "  To:      someone@b.example\n"
            "  Subject: Hello\n"
            "did not reach the following recipient(s):\n\n"
            "other@c.example on Thu, 29 Apr 2010 00:00:00 -0000\n"
            "    The recipient name is not recognized\n",
            subject="Undeliverable: Hello",
        )
    )
    assert [r.recipient for r in receipt.recipients] == ["other@c.example"]


def test_a_returned_message_keeps_its_folded_fields() -> None:
    receipt = classify(
        _bounce(
            "   ----- Transcript of session follows -----\n"
            "421 b.example (smtp)... Deferred: Connection timed out during user open\n"
            "   ----- Unsent message follows -----\n"
            "Received: by mx.a.example; (5.65/1.37) id 0000000;\n"
            "    Sat, 29 Apr 1995 23:34:45 +0900\n"
            "To: one@b.example\n\nhello\n",
            subject="Returned mail: Cannot send message for 4 days",
        )
    )
    [one] = receipt.recipients
    assert (one.recipient, one.reason) == ("one@b.example", "expired")
