"""The pure mail core: parse never raises, replies thread, composing cannot inject headers."""

from __future__ import annotations

import hashlib
from email import message_from_bytes
from email.policy import compat32, default

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailport.mail import Address, HeaderInjectionError, OutboundMessage, compose, parse
from mailport.mail.compose import OutgoingAttachment
from mailport.mail.reply import Unanswerable, reply_subject, reply_to
from mailport.mail.transfer import decode_base64
from mailport.mail.words import decode_words
from tests.corpus import AUTOMATIC_KINDS, ROOT, corpus_files, expectations, relative

US = Address("Support", "support@example.com")


def _parsed(headers: str, body: str = "hello\n") -> bytes:
    return (headers.strip("\n").replace("\n", "\r\n") + "\r\n\r\n" + body).encode("utf-8")


def test_every_corpus_file_parses() -> None:
    files = corpus_files("")
    failures = []
    for path in files:
        try:
            parse(path.read_bytes())
        except Exception as exc:
            failures.append(f"{relative(path)}: {type(exc).__name__}: {exc}")
    print(f"\nparsed {len(files)} corpus files, {len(failures)} raised")
    assert failures == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_parse_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    parse(data)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"From: ",
                b"To: ",
                b"Subject: ",
                b"=?utf-8?q?",
                b"?=",
                b"<",
                b">",
                b"@",
                b",",
                b'"',
                b"\r\n",
                b"\r\n ",
                b"Content-Type: multipart/mixed; boundary=x\r\n",
                b"--x\r\n",
                b"\xff\xfe",
                b"\xe2\x82",
                b"(",
                b")",
                b":",
                b";",
                b"\r\n\r\n",
                b"a",
            ]
        ),
        max_size=80,
    )
)
def test_parse_never_raises_on_header_shaped_noise(parts: list[bytes]) -> None:
    parse(b"".join(parts))


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Help", "Re: Help"),
        ("Re: Help", "Re: Help"),
        ("RE: re: Aw: SV: Help", "Re: Help"),
        ("Antw: VS: Ref: Rif: Help", "Re: Help"),
        ("回复: 答复：帮助", "Re: 帮助"),
        ("返信: お問い合わせ", "Re: お問い合わせ"),
        ("Re[2]: Help", "Re: Help"),
        ("رد: مرحبا", "Re: مرحبا"),
        ("תשובה: שלום", "Re: שלום"),
        ("ΑΠ: Καλημέρα", "Re: Καλημέρα"),
        ("Отв: Привет", "Re: Привет"),
        ("YNT: Merhaba", "Re: Merhaba"),
        ("Réf. : Facture", "Re: Facture"),
        ("Regarding the invoice", "Re: Regarding the invoice"),
        ("Response times", "Re: Response times"),
    ],
)
def test_reply_subject_has_one_prefix(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_reply_threads_and_goes_to_reply_to() -> None:
    original = parse(
        _parsed("""
From: Ann <ann@example.org>
Reply-To: Team <team@example.org>
To: support@example.com
Subject: Où est ma commande ?
Message-ID: <m2@example.org>
References: <m0@example.org> <m1@example.org>
""")
    )
    reply = reply_to(original, from_=US, text="Merci")
    assert [a.address for a in reply.to] == ["team@example.org"]
    headers = dict(reply.headers)
    assert headers["In-Reply-To"] == "<m2@example.org>"
    assert headers["References"] == "<m0@example.org> <m1@example.org> <m2@example.org>"
    assert reply.subject == "Re: Où est ma commande ?"
    composed = message_from_bytes(compose(reply).data, policy=default)
    assert str(composed["Subject"]) == "Re: Où est ma commande ?"
    assert composed["In-Reply-To"] == "<m2@example.org>"


def test_reply_all_leaves_out_our_own_addresses() -> None:
    original = parse(
        _parsed("""
From: ann@example.org
To: support@example.com, bob@example.org
Cc: Support Copy <SUPPORT@example.com>, carol@example.org
Subject: x
""")
    )
    reply = reply_to(original, from_=US, text="ok", reply_all=True)
    assert [a.address for a in reply.to] == ["ann@example.org"]
    assert [a.address for a in reply.cc] == ["bob@example.org", "carol@example.org"]


@pytest.mark.parametrize(
    "headers",
    [
        "From: MAILER-DAEMON\nSubject: x",
        "Subject: no sender at all",
        "From: ann@example.org\nAuto-Submitted: auto-replied\nSubject: Out of office",
        "From: list@example.org\nPrecedence: bulk\nSubject: digest",
    ],
)
def test_unanswerable(headers: str) -> None:
    with pytest.raises(Unanswerable):
        reply_to(parse(_parsed(headers)), from_=US, text="x")


def test_long_references_keep_root_and_newest() -> None:
    chain = " ".join(f"<r{i}@example.org>" for i in range(40))
    original = parse(
        _parsed(
            f"From: a@example.org\nMessage-ID: <new@example.org>\nReferences: {chain}\nSubject: x"
        )
    )
    refs = dict(reply_to(original, from_=US, text="x").headers)["References"].split()
    assert len(refs) == 20
    assert refs[0] == "<r0@example.org>"
    assert refs[-2:] == ["<r39@example.org>", "<new@example.org>"]


@pytest.mark.parametrize("field", ["subject", "name", "header", "filename"])
def test_compose_refuses_header_injection(field: str) -> None:
    evil = "hi\r\nBcc: victim@example.org"
    message = OutboundMessage(
        from_=US,
        to=(Address(evil if field == "name" else "Ann", "ann@example.org"),),
        subject=evil if field == "subject" else "ok",
        text="body",
        headers=(("X-Tag", evil),) if field == "header" else (),
        attachments=(OutgoingAttachment(evil, b"x"),) if field == "filename" else (),
    )
    with pytest.raises(HeaderInjectionError):
        compose(message)


def test_long_ids_are_folded_between_ids_never_encoded() -> None:
    long_id = "<" + "x" * 120 + "@example.org>"
    message = OutboundMessage(
        from_=US,
        to=(Address("", "a@example.org"),),
        subject="s",
        text="t",
        headers=(("In-Reply-To", long_id), ("References", f"<a@b.example> {long_id}")),
    )
    parsed = message_from_bytes(compose(message).data, policy=compat32)
    assert parsed["In-Reply-To"] == long_id
    assert parsed["References"].split() == ["<a@b.example>", long_id]
    assert "=?" not in parsed["References"]


def test_smtputf8_only_when_an_address_needs_it() -> None:
    base = OutboundMessage(
        from_=US, to=(Address("Zoë Ünïcode", "zoe@example.org"),), subject="Grüße", text="Hallo"
    )
    assert compose(base).smtputf8 is False
    utf8 = OutboundMessage(from_=US, to=(Address("", "zoë@example.org"),), subject="x", text="y")
    assert compose(utf8).smtputf8 is True


@settings(max_examples=300, deadline=None)
@example(
    subject="occurs when divided into an array, and the last e of the array! Путін хуйло!!!!!!",
    text="x",
    name="Jöhn  Dœ",
)
@given(
    subject=st.text(min_size=1, max_size=200).filter(lambda s: "\r" not in s and "\n" not in s),
    text=st.text(max_size=500),
    name=st.text(max_size=40).filter(lambda s: "\r" not in s and "\n" not in s),
)
def test_compose_then_parse_keeps_subject_name_and_text(subject: str, text: str, name: str) -> None:
    message = OutboundMessage(
        from_=US, to=(Address(name, "ann@example.org"),), subject=subject, text=text
    )
    parsed = parse(compose(message).data)
    # Exactly what was sent, but for leading and trailing space, and tabs, control
    # characters and line separators, which a header cannot hold and which read as spaces.
    controls = [*range(0x00, 0x0A), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x85, 0x2028, 0x2029]
    spaces = dict.fromkeys(controls, " ")
    assert parsed.subject == subject.translate(spaces).strip()
    assert [(a.name, a.address) for a in parsed.to] == [
        (name.translate(spaces).strip(), "ann@example.org")
    ]
    assert parsed.text.replace("\r\n", "\n").rstrip("\n") == text.replace("\r\n", "\n").replace(
        "\r", "\n"
    ).rstrip("\n")


def test_automatic_mail_is_never_answered() -> None:
    """Every bounce, report, read receipt and auto-reply the sources name is declined; mail
    the sources call "not a bounce" is declined only with a reason of its own."""
    answered_automatic = []
    for path, entry in expectations().items():
        if entry["kind"] not in AUTOMATIC_KINDS:
            continue
        try:
            reply_to(parse((ROOT / path).read_bytes()), from_=US, text="x")
            answered_automatic.append(path)
        except Unanswerable:
            pass
    assert answered_automatic == []
    negative = parse((ROOT / "negatives/sisimai/is-not-bounce-02.eml").read_bytes())
    assert negative.auto_submitted is None
    assert reply_to(negative, from_=US, text="x").to[0].address == "dummy@example.com"


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        # iso-8859-8-i is Hebrew in logical order; Python knows it only as iso-8859-8.
        (
            "=?iso-8859-8-i?B?7vLw5CAn4PDpIOzgIPDu9uAnOiBJbnZvaWNlIDAyNzIyMDI3?=",
            None,
            "מענה 'אני לא נמצא': Invoice 02722027",
        ),
        # Whitespace between adjacent encoded words is not text (RFC 2047 section 6.2), even
        # when their charsets differ.
        (
            "=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
            " =?ISO-8859-2?B?dSB1bmRlcnN0YW5k?=",
            None,
            "If you can read this you understand",
        ),
        # One UTF-8 character split across two words.
        ("=?utf-8?b?4pw=?= =?utf-8?b?kw==?=", None, "✓"),
        ("=?utf-8?q?a?= b =?utf-8?q?c?=", None, "a b c"),
        # Raw 8-bit header bytes: UTF-8 first (RFC 6532), else the body's declared charset.
        ("提示".encode("gb2312").decode("utf-8", "surrogateescape"), "gb2312", "提示"),
        ("Grüße".encode().decode("utf-8", "surrogateescape"), "iso-8859-1", "Grüße"),
    ],
)
def test_header_words(value: str, hint: str | None, expected: str) -> None:
    assert decode_words(value, hint) == expected


def test_trace_fields_alone_do_not_make_an_email() -> None:
    junk = b"Return-Path: <a@example.org>\r\nReceived: from x by y\r\n\r\n\x00\x01binary junk"
    assert parse(junk).fatal == "no header fields: not an RFC 5322 message"


def test_a_bom_behind_trace_fields_is_still_a_message() -> None:
    """An MX prepends Return-Path and Received to whatever arrived, BOM included."""
    raw = (
        b"Return-Path: <a@example.org>\r\nReceived: from x by y\r\n"
        b"\xef\xbb\xbfFrom: <abusedesk@example.com>\r\nSubject: FW: Earn money\r\n\r\nx\r\n"
    )
    message = parse(raw)
    assert message.fatal is None
    assert message.from_ == (Address("", "abusedesk@example.com"),)
    assert "byte order mark before the header" in message.defects


@pytest.mark.parametrize(
    ("encoded", "decoded", "defect"),
    [
        (b"aGVsbG8=", b"hello", None),
        (b"aGVs\r\nbG8=\r\n", b"hello", None),
        (b"aGVsbG8", b"hello", None),  # padding left out
        (b"aGVsbG8gd", b"hello ", "base64: truncated last group"),
        (b"aGVs*bG8=", b"hello", "base64: characters outside the alphabet ignored"),
    ],
)
def test_damaged_base64_keeps_what_it_can(
    encoded: bytes, decoded: bytes, defect: str | None
) -> None:
    assert decode_base64(encoded) == (decoded, defect)


_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s not in {".", ".."})


@settings(max_examples=300, deadline=None)
@given(files=st.lists(st.tuples(_names, st.binary(max_size=3000)), max_size=6))
@example(files=[("<>", b"")])  # the stdlib's unquote() strips angle brackets with the quotes
@example(files=[("This is a test.txt", b"x"), ("ciële.txt", b"y")])
def test_attachments_survive_compose_then_parse(files: list[tuple[str, bytes]]) -> None:
    from mailport.mail.compose import OutgoingAttachment

    message = OutboundMessage(
        from_=US,
        to=(Address("", "ann@example.org"),),
        subject="files",
        text="see attached",
        attachments=tuple(OutgoingAttachment(n, d, "application/octet-stream") for n, d in files),
    )
    parsed = parse(compose(message).data)
    assert [(a.filename, a.size) for a in parsed.attachments] == [(n, len(d)) for n, d in files]
    assert [a.sha256 for a in parsed.attachments] == [
        hashlib.sha256(d).hexdigest() for _, d in files
    ]


@settings(max_examples=100, deadline=None)
@given(
    subject=st.text(max_size=80).filter(lambda s: "\r" not in s and "\n" not in s),
    chain=st.lists(
        st.from_regex(r"<[a-z0-9]{1,12}@[a-z]{1,8}\.example>", fullmatch=True), max_size=30
    ),
)
def test_reply_to_a_parsed_message_threads(subject: str, chain: list[str]) -> None:
    original = OutboundMessage(
        from_=Address("Ann", "ann@example.org"),
        to=(US,),
        subject=subject,
        text="hello",
        headers=(("References", " ".join(chain)),) if chain else (),
    )
    composed = compose(original)
    reply = reply_to(parse(composed.data), from_=US, text="thanks")
    headers = dict(reply.headers)
    assert headers["In-Reply-To"] == composed.message_id
    refs = headers["References"].split()
    assert refs[-1] == composed.message_id
    assert len(refs) <= 20
    if chain:
        assert refs[0] == chain[0]
    assert reply.subject.startswith("Re:") and not reply.subject.startswith("Re: Re:")
    assert reply.subject == "Re:" or reply.subject.startswith("Re: ")
    assert [a.address for a in reply.to] == ["ann@example.org"]


def test_winmail_dat_is_unpacked() -> None:
    corpus_files()
    ukr = parse((ROOT / "mime/tnef/mimekit/ukr.eml").read_bytes())
    # MimeKit's test: the body inside the TNEF part is HTML in koi8-r.
    assert ukr.html is not None and "charset=koi8-r" in ukr.html
    assert "шостий" in ukr.text
    rich = parse((ROOT / "mime/tnef/mimekit/rich-text.eml").read_bytes())
    names = [a.filename for a in rich.attachments]
    assert names[:2] == ["winmail.dat", "kitten-playing-with-a-christmas-tree.jpg"]
    kitten = rich.attachments[1]
    assert (kitten.content_type, kitten.size) == ("image/jpeg", 375081)


def test_damaged_tnef_is_a_defect_not_a_crash() -> None:
    from mailport.mail.tnef import unpack

    assert unpack(b"not tnef").defects == ["TNEF: truncated or damaged (no TNEF signature)"]
    truncated = b"\x78\x9f\x3e\x22\x00\x00\x02\x02\x90\x06\x00\xff\xff\x00\x00"
    assert unpack(truncated).defects[0].startswith("TNEF: truncated or damaged")


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=600))
def test_tnef_never_raises(data: bytes) -> None:
    from mailport.mail.tnef import unpack

    unpack(b"\x78\x9f\x3e\x22\x00\x00" + data)


def test_rfc2231_continuations_out_of_order_with_a_charset() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
        b"\r\nhi\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
        b" filename*1*=%E2%82%AC%20report;\r\n filename*0*=utf-8''Quarterly%20;\r\n"
        b' filename*2=".pdf"\r\n\r\nAAAA\r\n--b--\r\n'
    )
    assert [a.filename for a in parse(raw).attachments] == ["Quarterly € report.pdf"]


def test_an_html_reply_keeps_the_lines_of_the_text() -> None:
    original = parse(
        b"From: Ana <ana@example.org>\r\nSubject: Hola\r\nMessage-ID: <h1@example.org>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hola</p>\r\n"
    )
    reply = reply_to(original, from_=Address("", "support@example.test"), text="Thanks,\nwe <3 it.")
    assert reply.html is not None
    assert reply.html.startswith("<p>Thanks,<br>\nwe &lt;3 it.</p>")


def test_a_reply_to_naming_only_us_leaves_from_to_answer() -> None:
    original = parse(
        b"From: Ana <ana@example.org>\r\nReply-To: support@example.test\r\n"
        b"Subject: x\r\nMessage-ID: <r1@example.org>\r\n\r\nhello\r\n"
    )
    reply = reply_to(
        original,
        from_=Address("", "support@example.test"),
        text="ok",
        own=frozenset({"support@example.test"}),
    )
    assert [a.address for a in reply.to] == ["ana@example.org"]


def test_a_relayed_human_answer_is_not_marked_automatic() -> None:
    original = parse(b"From: ana@example.org\r\nSubject: x\r\nMessage-ID: <h@e.org>\r\n\r\nhi\r\n")
    us = Address("", "support@example.test")
    assert ("Auto-Submitted", "auto-replied") in reply_to(original, from_=us, text="ok").headers
    human = reply_to(original, from_=us, text="ok", automatic=False)
    assert [name for name, _ in human.headers] == ["In-Reply-To", "References"]
