"""The MIME tree: which parts are body and which attachments, on malformed and large mail."""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP

from hypothesis import given, settings
from hypothesis import strategies as st

from mailport.mail import parse
from mailport.mail.transfer import decode_base64, digest_base64


def test_a_boundary_folded_inside_its_quotes_still_splits() -> None:
    # Reduced from stalwart thirdparty/012.eml.
    raw = (
        b'From: a@example.org\nContent-Type: multipart/mixed; boundary="foo\n bar"\n\n'
        b"--foo bar\nContent-Type: text/x-myown\n\nhello\n"
        b"--foo bar\nContent-Type: text/plain\n\nworld\n--foo bar--\n"
    )
    message = parse(raw)
    assert message.parts.types == ("multipart/mixed", "text/x-myown", "text/plain")
    assert message.text == "world"  # the line break before a delimiter is its own
    assert [a.content_type for a in message.attachments] == ["text/x-myown"]


def test_a_content_type_without_its_semicolon_keeps_its_boundary() -> None:
    # Reduced from stalwart malformed/017.eml.
    raw = (
        b'From: a@example.org\nContent-Type: multipart/mixed\n\tboundary="b"\n\n'
        b"--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
        b"aGVsbG8gd29ybGQK\n--b--\n"
    )
    message = parse(raw)
    assert message.parts.types == ("multipart/mixed", "image/png")
    assert [(a.content_type, a.size) for a in message.attachments] == [("image/png", 12)]


def test_a_multipart_whose_boundary_never_appears_is_kept_as_an_attachment() -> None:
    raw = b'From: a@example.org\nContent-Type: multipart/mixed; boundary="ab"\n\nbody\n'
    message = parse(raw)
    assert message.parts.attachments == (0,)
    assert message.attachments[0].size == len(b"body\n")


def test_html_only_alternative_gives_text_from_the_html() -> None:
    raw = (
        b'From: a@example.org\nContent-Type: multipart/alternative; boundary="b"\n\n'
        b"--b\nContent-Type: text/html; charset=utf-8\n\n<p>Hall&ouml; <b>Welt</b></p>\n--b--\n"
    )
    message = parse(raw)
    assert message.parts.text_body == (1,) and message.parts.html_body == (1,)
    assert message.text.strip() == "Hallö Welt"
    assert message.html == "<p>Hall&ouml; <b>Welt</b></p>"


def test_an_inline_image_is_also_an_attachment() -> None:
    raw = (
        b'From: a@example.org\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nsee the picture\n"
        b"--b\nContent-Type: image/gif\nContent-Disposition: inline\n"
        b"Content-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAACw=\n--b--\n"
    )
    message = parse(raw)
    assert message.parts.text_body == (1, 2)
    assert message.parts.attachments == (2,)
    assert [(a.content_type, a.inline) for a in message.attachments] == [("image/gif", True)]


def test_text_lines_end_in_lf_whatever_the_wire_used() -> None:
    message = parse(b"From: a@example.org\r\nSubject: x\r\n\r\nline one\r\nline two\r\n")
    assert message.text == "line one\nline two\n"


def test_a_wrong_charset_label_is_reported_with_the_one_used() -> None:
    body = "El señor pidió café y piñones en España".encode("cp1252")
    raw = b"From: a@example.org\nContent-Type: text/plain; charset=us-ascii\n\n" + body
    message = parse(raw)
    assert message.text == "El señor pidió café y piñones en España"
    assert [(c.declared, c.used) for c in message.charsets] == [("us-ascii", "cp1252")]


def test_iso_2022_jp_with_a_character_the_codec_lacks_costs_one_replacement() -> None:
    # Reduced from php-mime-mail-parser issue116: NEC's "№" in an ISO-2022-JP subject.
    subject = "=?iso-2022-jp?B?GyRCJygnJS1iGyhCNDEgGyRCJ2AnZBsoQiAyOC4wOS4yMDE2?="
    message = parse(f"From: a@example.org\nSubject: {subject}\n\nx\n".encode())
    assert message.subject == "ЖД\ufffd41 от 28.09.2016"


@settings(max_examples=300)
@given(st.text(alphabet="ABCDEFabcdef0123456789+/=\n\r -_!é", max_size=600))
def test_streamed_base64_digest_matches_decoding_it_whole(text: str) -> None:
    decoded, defect = decode_base64(text.encode("ascii", "ignore"))
    digest = digest_base64(text)
    assert (digest.size, digest.sha256, digest.defect) == (
        len(decoded),
        hashlib.sha256(decoded).hexdigest(),
        defect,
    )


def test_streamed_digest_across_chunk_boundaries() -> None:
    data = os.urandom(300_001)
    text = base64.encodebytes(data).decode() + "garbage after padding is ignored"
    digest = digest_base64(memoryview(text.encode()))
    assert (digest.size, digest.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def _large_message() -> tuple[bytes, bytes, bytes]:
    data = os.urandom(8 << 20)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "big"
    message.set_content("the report is attached")
    message.add_attachment(data, maintype="application", subtype="pdf", filename="report.pdf")
    forwarded = EmailMessage()
    forwarded["Subject"] = "forwarded"
    forwarded.set_content("inside")
    forwarded.add_attachment(os.urandom(1 << 20), maintype="image", subtype="png", filename="p.png")
    message.add_attachment(forwarded)
    raw = message.as_bytes()
    attached = message_from_bytes(raw).get_payload()[2].as_bytes(policy=SMTP)
    return raw, data, attached


def test_a_large_attachment_is_sized_and_hashed_without_a_second_copy() -> None:
    raw, data, attached = _large_message()
    tracemalloc.start()
    try:
        message = parse(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    report, forwarded = message.attachments
    assert (report.filename, report.size) == ("report.pdf", len(data))
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    assert (forwarded.content_type, forwarded.size) == ("message/rfc822", len(attached))
    assert forwarded.sha256 == hashlib.sha256(attached).hexdigest()
    assert message.text == "the report is attached\n"
    # The stdlib parser alone peaks near eight times the message; here, less than the
    # message itself (the forwarded message is serialised to be hashed).
    assert peak < len(raw), f"parse peaked at {peak} bytes for a {len(raw)}-byte message"
