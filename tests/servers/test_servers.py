"""Smoke tests proving the test servers (Dovecot, SMTP sink, Postfix, test CA) work."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path

import pytest

from .dovecot import UNKNOWN_PREFIX, Dovecot, imap_utf7_decode, imap_utf7_encode
from .postfix import Postfix
from .smtp_sink import SmtpSink
from .tls import TlsFiles

pytestmark = pytest.mark.servers


def _message(subject: str, body: str = "hello\r\n") -> bytes:
    """Return a small raw RFC 5322 message."""
    return (
        f"From: a@example.test\r\nTo: b@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\n{body}"
    ).encode()


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    """A fresh, empty mailbox."""
    return dovecot.new_user()


# -- TLS ------------------------------------------------------------------------------


def test_tls_files_and_client_context(tls: TlsFiles) -> None:
    for path in (tls.ca_cert, tls.cert, tls.key):
        assert path.is_file()
        assert path.stat().st_mode & 0o777 == 0o644
    ctx = tls.client_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname


def test_certificate_names_and_untrusted_ca(dovecot: Dovecot) -> None:
    ctx = dovecot.tls.client_context()
    for host in ("localhost", "127.0.0.1"):  # both are in the subjectAltName
        imaplib.IMAP4_SSL(host, dovecot.imaps_port, ssl_context=ctx, timeout=10).shutdown()
    with pytest.raises(ssl.SSLCertVerificationError):  # system CAs do not trust the test CA
        imaplib.IMAP4_SSL(
            "localhost", dovecot.imaps_port, ssl_context=ssl.create_default_context(), timeout=10
        ).shutdown()


def test_utf7_round_trip() -> None:
    for name in ("INBOX", "Entwürfe", "A&B", "日本語 box", "~peter/mail/台北/日本語"):
        assert imap_utf7_decode(imap_utf7_encode(name)) == name
    assert imap_utf7_encode("Entwürfe") == "Entw&APw-rfe"
    assert imap_utf7_encode("A&B") == "A&-B"


# -- Dovecot: protocols ------------------------------------------------------------------


def test_imap_plain_login_and_starttls(dovecot: Dovecot, user: str) -> None:
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert "STARTTLS" in conn.capabilities
        conn.starttls(ssl_context=dovecot.tls.client_context())
        assert "IDLE" in conn.capabilities
        assert conn.login(user, dovecot.password)[0] == "OK"
        assert conn.select("INBOX")[0] == "OK"
    finally:
        conn.logout()

    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert conn.login(user, dovecot.password)[0] == "OK"  # plaintext is allowed
    finally:
        conn.logout()


def test_imap_wrong_password_is_refused(dovecot: Dovecot, user: str) -> None:
    conn = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            conn.login(user, "wrong")
    finally:
        conn.shutdown()


def test_imaps_verified(dovecot: Dovecot, user: str) -> None:
    ctx = dovecot.tls.client_context()
    conn = imaplib.IMAP4_SSL("localhost", dovecot.imaps_port, ssl_context=ctx, timeout=10)
    try:
        assert conn.login(user, dovecot.password)[0] == "OK"
        assert conn.select("INBOX")[0] == "OK"
    finally:
        conn.logout()


def test_pop3_plain_and_stls(dovecot: Dovecot, user: str) -> None:
    dovecot.append(user, _message("pop me"))
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context=dovecot.tls.client_context())
        pop.user(user)
        pop.pass_(dovecot.password)
        assert pop.stat()[0] == 1
        uidl = pop.uidl()[1][0].split()
        assert len(uidl[1]) == 16  # %08Xu%08Xv
        assert b"Subject: pop me" in b"\r\n".join(pop.retr(1)[1])
    finally:
        pop.quit()

    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        pop.user(user)
        pop.pass_(dovecot.password)
        assert pop.stat()[0] == 1
    finally:
        pop.quit()


def test_pop3s_verified(dovecot: Dovecot, user: str) -> None:
    ctx = dovecot.tls.client_context()
    pop = poplib.POP3_SSL("localhost", dovecot.pop3s_port, context=ctx, timeout=10)
    try:
        pop.user(user)
        pop.pass_(dovecot.password)
        assert pop.stat()[0] == 0
    finally:
        pop.quit()


# -- Dovecot: helpers ----------------------------------------------------------------


def test_append_search_and_flags(dovecot: Dovecot, user: str) -> None:
    uid1 = dovecot.append(user, _message("one"))
    uid2 = dovecot.append(user, _message("two"), flags=["\\Seen", "$MailportProcessed"])
    assert (uid1, uid2) == (1, 2)
    assert dovecot.search(user, "INBOX", "ALL") == [1, 2]
    assert dovecot.search(user, "INBOX", "KEYWORD $MailportProcessed") == [2]
    assert dovecot.search(user, "INBOX", "UNKEYWORD $MailportProcessed") == [1]
    assert dovecot.fetch_flags(user, "INBOX") == {1: set(), 2: {"\\Seen", "$MailportProcessed"}}
    bodies = dovecot.fetch_all(user, "INBOX")
    assert b"Subject: one" in bodies[1]
    assert b"Subject: two" in bodies[2]
    assert dovecot.message_count(user, "INBOX") == 2
    # Helpers peek: nothing became \Seen.
    assert dovecot.fetch_flags(user, "INBOX")[1] == set()


def test_append_creates_folder(dovecot: Dovecot, user: str) -> None:
    dovecot.append(user, _message("archived"), folder="Entwürfe 2024")
    assert set(dovecot.folders(user)) == {"INBOX", "Entwürfe 2024"}
    assert dovecot.message_count(user, "Entwürfe 2024") == 1
    assert dovecot.message_count(user, "INBOX") == 0


def test_empty_mailbox(dovecot: Dovecot, user: str) -> None:
    assert dovecot.search(user, "INBOX", "ALL") == []
    assert dovecot.fetch_flags(user, "INBOX") == {}
    assert dovecot.fetch_all(user, "INBOX") == {}
    assert dovecot.message_count(user, "INBOX") == 0
    assert dovecot.folders(user) == ["INBOX"]


def test_append_many(dovecot: Dovecot, user: str) -> None:
    raws = [_message(f"bulk {i}") for i in range(500)]
    dovecot.append_many(user, raws)
    dovecot.append_many(user, raws[:3], folder="Old Mail")
    home = dovecot.home(user)
    for path in [home, *home.rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (dovecot._uid, dovecot._gid)
    assert dovecot.message_count(user, "INBOX") == 500
    assert dovecot.message_count(user, "Old Mail") == 3
    assert set(dovecot.folders(user)) == {"INBOX", "Old Mail"}
    bodies = dovecot.fetch_all(user, "INBOX")
    assert sorted(bodies.values()) == sorted(raws)
    # New mail delivered later, while Dovecot already has indexes, shows up too.
    dovecot.append_many(user, [_message("late")])
    assert dovecot.search(user, "INBOX", "SUBJECT late") == [501]


def test_append_many_seen_over_pop3(dovecot: Dovecot, user: str) -> None:
    dovecot.append_many(user, [_message(f"p{i}") for i in range(3)])
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        pop.user(user)
        pop.pass_(dovecot.password)
        assert pop.stat()[0] == 3
    finally:
        pop.quit()


def test_stop_kills_everything(tls: TlsFiles) -> None:
    server = Dovecot.start(tls)
    user = server.new_user()
    conn = imaplib.IMAP4(server.host, server.imap_port, timeout=10)
    conn.login(user, server.password)  # a live session process
    root = server.root
    pgid = server.process.pid
    server.stop()
    conn.shutdown()
    assert not root.exists()
    assert _group_members(pgid) == []


def _group_members(pgid: int) -> list[int]:
    """Return the pids still in process group *pgid*."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


# -- SMTP sink -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sink(tls: TlsFiles) -> Iterator[SmtpSink]:
    """A sink offering STARTTLS and AUTH, refusing recipients at refused.test, with DSN."""

    def refuse(rcpt: str) -> str | None:
        return "550 5.1.1 no such user" if rcpt.endswith("@refused.test") else None

    server = SmtpSink.start(tls=tls, auth=("smtp-user", "smtp-pass"), rcpt_reply=refuse, dsn=True)
    yield server
    server.stop()


@pytest.fixture
def clean_sink(sink: SmtpSink) -> SmtpSink:
    """The module's sink, emptied."""
    sink.clear()
    return sink


def _email(subject: str) -> EmailMessage:
    """Return a small EmailMessage."""
    msg = EmailMessage()
    msg["From"] = "a@example.test"
    msg["To"] = "b@example.test"
    msg["Subject"] = subject
    msg.set_content("hi\n")
    return msg


def test_sink_plain(clean_sink: SmtpSink) -> None:
    with smtplib.SMTP(clean_sink.host, clean_sink.port, timeout=10) as smtp:
        smtp.sendmail("a@example.test", ["b@example.test", "c@example.test"], _message("s1"))
    [got] = clean_sink.wait_for(1, timeout=5)
    assert got.mail_from == "a@example.test"
    assert got.rcpt_tos == ("b@example.test", "c@example.test")
    assert got.data == _message("s1")
    assert not got.tls
    assert got.auth_login is None


def test_sink_starttls_and_auth(clean_sink: SmtpSink, tls: TlsFiles) -> None:
    with smtplib.SMTP("localhost", clean_sink.port, timeout=10) as smtp:
        smtp.starttls(context=tls.client_context())
        smtp.login("smtp-user", "smtp-pass")
        smtp.send_message(_email("s2"))
    [got] = clean_sink.wait_for(1, timeout=5)
    assert got.tls
    assert got.auth_login == "smtp-user"
    assert b"Subject: s2" in got.data


def test_sink_auth_without_tls_and_bad_password(clean_sink: SmtpSink) -> None:
    with smtplib.SMTP(clean_sink.host, clean_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("smtp-user", "nope")
        smtp.login("smtp-user", "smtp-pass")
        smtp.send_message(_email("s3"))
    assert clean_sink.wait_for(1, timeout=5)[0].auth_login == "smtp-user"


def test_sink_refuses_recipient_and_keeps_dsn_options(clean_sink: SmtpSink) -> None:
    with smtplib.SMTP(clean_sink.host, clean_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail("a@example.test", ["x@refused.test"], _message("s4"))
        assert info.value.recipients["x@refused.test"][0] == 550
        refused = smtp.sendmail(
            "a@example.test",
            ["ok@example.test", "x@refused.test"],
            _message("s5"),
            mail_options=["RET=HDRS", "ENVID=Env-42"],
            rcpt_options=["NOTIFY=FAILURE,DELAY"],
        )
        assert refused == {"x@refused.test": (550, b"5.1.1 no such user")}
    [got] = clean_sink.wait_for(1, timeout=5)
    assert got.rcpt_tos == ("ok@example.test",)
    assert "ENVID=Env-42" in got.mail_options
    assert got.rcpt_options == (("NOTIFY=FAILURE,DELAY",),)
    assert len(clean_sink.received()) == 1


def test_sink_wait_for_timeout_and_clear(clean_sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError):
        clean_sink.wait_for(1, timeout=0.1)
    with smtplib.SMTP(clean_sink.host, clean_sink.port, timeout=10) as smtp:
        for i in range(3):
            smtp.sendmail("a@example.test", ["b@example.test"], _message(f"n{i}"))
    assert len(clean_sink.wait_for(3, timeout=5)) == 3
    clean_sink.clear()
    assert clean_sink.received() == []


def test_sink_minimal() -> None:
    with SmtpSink.start() as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            assert not smtp.has_extn("starttls")
            assert not smtp.has_extn("auth")
            assert not smtp.has_extn("dsn")
            smtp.sendmail("", ["b@example.test"], _message("bounce"))
        assert sink.wait_for(1, timeout=5)[0].mail_from == "<>"


# -- Postfix relaying to Dovecot over LMTP -------------------------------------------

DOMAIN = "example.test"


@pytest.fixture(scope="module")
def postfix(dovecot: Dovecot) -> Iterator[Postfix]:
    """A private Postfix delivering *DOMAIN* into the session's Dovecot over LMTP."""
    server = Postfix.start(dovecot.lmtp_port, domain=DOMAIN)
    yield server
    server.stop()


def _wait_for_dsn(dovecot: Dovecot, user: str, envid: str, timeout: float = 20.0) -> Message:
    """Poll *user*'s INBOX over IMAP until a DSN for *envid* arrives; return it parsed."""
    deadline = time.monotonic() + timeout
    while True:
        for raw in dovecot.fetch_all(user).values():
            msg = message_from_bytes(raw, policy=policy.default)
            if msg.get_content_type() == "multipart/report" and envid.encode() in raw:
                return msg
        if time.monotonic() > deadline:
            raise TimeoutError(f"no DSN for {envid} in {user}'s INBOX within {timeout} s")
        time.sleep(0.05)


def _delivery_status(dsn: Message) -> tuple[Message, Message]:
    """Return the per-message and the (single) per-recipient fields of a DSN."""
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    [status] = [part for part in dsn.walk() if part.get_content_type() == "message/delivery-status"]
    # The stdlib parses message/delivery-status into one header block per paragraph.
    per_message, per_recipient = status.get_payload()
    return per_message, per_recipient


def test_postfix_bounces_unknown_user_with_dsn(dovecot: Dovecot, postfix: Postfix) -> None:
    sender = dovecot.new_user("sender", domain=DOMAIN)
    unknown = f"{UNKNOWN_PREFIX}{uuid.uuid4().hex[:8]}@{DOMAIN}"
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("dsn")
        # Accepted at RCPT: only Dovecot knows the user does not exist.
        refused = smtp.sendmail(
            sender,
            [unknown],
            _message("bounce me"),
            mail_options=["RET=HDRS", "ENVID=mailport.7"],
            rcpt_options=["NOTIFY=FAILURE"],
        )
    assert refused == {}

    dsn = _wait_for_dsn(dovecot, sender, "mailport.7")
    assert dsn["Return-Path"] == "<>"
    per_message, per_recipient = _delivery_status(dsn)
    assert per_message["Original-Envelope-Id"] == "mailport.7"
    assert per_recipient["Final-Recipient"] == f"rfc822; {unknown}"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert "550 5.1.1" in per_recipient["Diagnostic-Code"]
    # RET=HDRS: the original comes back as headers only.
    [returned] = [p for p in dsn.walk() if p.get_content_type() == "text/rfc822-headers"]
    assert "Subject: bounce me" in returned.get_content()


def test_postfix_success_dsn_and_delivery(dovecot: Dovecot, postfix: Postfix) -> None:
    sender = dovecot.new_user("sender", domain=DOMAIN)
    rcpt = dovecot.new_user("rcpt", domain=DOMAIN)
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.sendmail(
            sender,
            [rcpt],
            _message("deliver me"),
            mail_options=["RET=HDRS", "ENVID=mailport.8"],
            rcpt_options=["NOTIFY=SUCCESS"],
        )

    dsn = _wait_for_dsn(dovecot, sender, "mailport.8")
    per_message, per_recipient = _delivery_status(dsn)
    assert per_message["Original-Envelope-Id"] == "mailport.8"
    assert per_recipient["Final-Recipient"] == f"rfc822; {rcpt}"
    # Over LMTP Postfix says "relayed"; only its own virtual(8) delivery says "delivered".
    assert per_recipient["Action"] in ("relayed", "delivered")
    assert per_recipient["Status"].startswith("2.")
    [delivered] = dovecot.fetch_all(rcpt).values()
    assert b"Subject: deliver me" in delivered
    assert f"Return-Path: <{sender}>".encode() in delivered


def test_postfix_never_relays(postfix: Postfix) -> None:
    # Other domains resolve to the error: transport, which smtpd refuses at RCPT.
    with (
        smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp,
        pytest.raises(smtplib.SMTPRecipientsRefused) as info,
    ):
        smtp.sendmail(f"a@{DOMAIN}", ["x@elsewhere.test"], _message("stay here"))
    assert info.value.recipients["x@elsewhere.test"][0] == 550


def test_postfix_stop_cleans_up(dovecot: Dovecot) -> None:
    server = Postfix.start(dovecot.lmtp_port, domain=DOMAIN)
    assert server.log_path.is_file()
    server.stop()
    assert not server.root.exists()
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()
