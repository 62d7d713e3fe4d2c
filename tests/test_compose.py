"""Compose and reply on the inputs a sceptical user tried: each is a reduced real failure."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from mailport.mail import (
    Address,
    HeaderInjectionError,
    OutboundMessage,
    OutgoingAttachment,
    compose,
    parse,
    reply_subject,
    reply_to,
)
from mailport.mail.html_text import html_to_text

US = Address("Support", "support@example.com")
ANN = Address("Ann", "ann@example.org")


def _message(**fields: object) -> OutboundMessage:
    base: dict[str, object] = dict(from_=US, to=(ANN,), subject="s", text="t")
    return OutboundMessage(**{**base, **fields})  # type: ignore[arg-type]


def _header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_a_quoted_local_part_with_a_space_is_one_address() -> None:
    message = parse(b'From: R <"john doe"@example.org>\r\nSubject: s\r\n\r\nx')
    assert [(a.name, a.address) for a in message.from_] == [("R", '"john doe"@example.org')]
    composed = compose(_message(to=(Address("R", '"john doe"@example.org'),)))
    assert [a.address for a in parse(composed.data).to] == ['"john doe"@example.org']


def test_non_ascii_domains_go_as_idna_2008_in_headers_and_envelope() -> None:
    composed = compose(_message(from_=Address("S", "s@faß.de"), to=(Address("R", "r@例子.测试"),)))
    assert (composed.sender, composed.recipients) == (
        "s@xn--fa-hia.de",
        ("r@xn--fsqu00a.xn--0zwm56d",),
    )
    assert composed.smtputf8 is False
    assert composed.message_id.endswith("@xn--fa-hia.de>")
    assert b"<r@xn--fsqu00a.xn--0zwm56d>" in composed.data


def test_an_attached_message_arrives_byte_for_byte() -> None:
    eml = b"From: a@example.org\r\nSubject: inner\r\n\r\nhello\r\n"
    composed = compose(_message(attachments=(OutgoingAttachment("fwd.eml", eml),)))
    [attachment] = parse(composed.data).attachments
    assert (attachment.filename, attachment.size) == ("fwd.eml", len(eml))
    assert attachment.sha256 == hashlib.sha256(eml).hexdigest()


def test_reply_to_is_an_address_field() -> None:
    joerg = Address("Jörg Müller", "joerg@example.com")
    for message in (
        _message(reply_to=(joerg,)),
        _message(headers=(("Reply-To", "Jörg Müller <joerg@example.com>"),)),
    ):
        assert parse(compose(message).data).reply_to == (joerg,)


@pytest.mark.parametrize("name", ["X-Bad Name", "X-Ü", "", "X-Colon:"])
def test_a_field_name_that_would_break_the_header_is_refused(name: str) -> None:
    with pytest.raises(HeaderInjectionError, match="not a header field name"):
        compose(_message(headers=((name, "v"),)))


@pytest.mark.parametrize("name", ["Date", "MIME-Version", "Content-Type", "Subject", "To"])
def test_fields_compose_writes_are_not_written_twice(name: str) -> None:
    with pytest.raises(ValueError, match="written from the message's own fields"):
        compose(_message(headers=((name, "v"),)))


def test_a_given_message_id_replaces_the_generated_one() -> None:
    composed = compose(_message(headers=(("Message-ID", "<mine@example.com>"),)))
    assert composed.message_id == "<mine@example.com>"
    assert [line for line in _header_lines(composed.data) if line.startswith(b"Message-ID")] == [
        b"Message-ID: <mine@example.com>"
    ]


def test_long_display_names_fold_within_the_line_limits() -> None:
    sender = Address(("Bartholomew " * 100).strip(), "f@example.com")
    composed = compose(_message(from_=sender, to=(Address("n" * 1000, "t@example.org"),)))
    assert max(len(line) for line in _header_lines(composed.data)) <= 78
    parsed = parse(composed.data)
    assert (parsed.from_[0].name, parsed.to[0].name) == (sender.name, "n" * 1000)
    assert message_from_bytes(composed.data, policy=default)["To"].addresses[0].username == "t"


def test_mail_for_bcc_only_names_undisclosed_recipients() -> None:
    composed = compose(_message(to=(), bcc=(ANN,)))
    assert b"To: undisclosed-recipients:;" in _header_lines(composed.data)
    assert composed.recipients == ("ann@example.org",)
    assert b"ann@example.org" not in composed.data


def test_reply_prefixes_and_own_addresses_in_any_case() -> None:
    assert reply_subject("회신: 안녕하세요") == "Re: 안녕하세요"
    assert reply_subject("Antwort: Hallo") == "Re: Hallo"
    assert reply_subject("") == "Re:"
    original = parse(
        b"From: ann@example.org\r\nCc: Support@Example.COM\r\nSubject: x\r\n"
        b"Message-ID: <o@example.org>\r\n\r\nhi\r\n"
    )
    reply = reply_to(original, from_=US, text="ok", reply_all=True)
    assert [a.address for a in (*reply.to, *reply.cc)] == ["ann@example.org"]


def test_html_to_text_reads_as_a_browser_shows_it() -> None:
    assert html_to_text("a<br>b<br/>c") == "a\nb\nc"
    assert html_to_text("<table><tr><td>Order:</td><td>12345</td></tr></table>") == "Order: 12345"
    assert html_to_text("<p>Hello\n  world</p><pre>  code\n    more</pre>") == (
        "Hello world\n  code\n    more"
    )


def test_parse_prints_brackets_as_written(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(b"From: a@example.org\r\nSubject: closing [/] tag [b]now\r\n\r\nx\r\n")
    shown = subprocess.run(
        [sys.executable, "-m", "mailport.cluster.cli", "parse", str(path)],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert "closing [/] tag [b]now" in shown.stdout
