"""Read raw message bytes into a ParsedMessage. Never raises: defects are data."""

from __future__ import annotations

import email
import re
from email.message import Message

from mailport.mail import language
from mailport.mail.addresses import read_addresses
from mailport.mail.automatic import automatic, kind
from mailport.mail.body import body
from mailport.mail.headers import MSGID, date, fields, first_msgid, header_text, raw_values
from mailport.mail.message import Address, ParsedMessage
from mailport.mail.spans import Spans
from mailport.mail.unfolding import READING
from mailport.mail.words import unescape_8bit

# Fields that receiving servers add (RFC 5321 section 4.4): alone they do not make an email.
_TRACE = {"return-path", "received", "delivered-to", "x-original-to"}


_OBS_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BOM_AT_LINE_START = re.compile(rb"(^|\n)\xef\xbb\xbf")


def parse(raw: bytes) -> ParsedMessage:
    defects: list[str] = []
    raw = _normalise_header_block(raw, defects)
    try:
        # compat32 underneath: the modern policy re-parses Content-Type through the header
        # registry on every access, which cost two thirds of the parse time.
        spans = Spans(raw)
        msg = email.message_from_bytes(spans.set_aside(), policy=READING)
    except Exception as exc:  # the stdlib parser is meant not to raise; be sure of it
        return _unreadable(f"parser failed: {type(exc).__name__}: {exc}")
    if not raw or raw.isspace() or not [k for k in msg if k.lower() not in _TRACE]:
        return _unreadable("no header fields: not an RFC 5322 message")
    defects.extend(type(d).__name__ for d in msg.defects)
    hint = _declared_charset(msg)

    def header(name: str) -> str:
        return header_text(msg, name, hint)

    def addresses(name: str) -> tuple[Address, ...]:
        return read_addresses(msg, name, defects, hint)

    def ids(name: str) -> str:
        # Message ids are taken verbatim: a reply must echo them byte for byte, and the
        # header registry rewrites the unusual ones (two @ signs, say). Of a repeated
        # field, the first counts, as with Subject.
        values = raw_values(msg, name)
        return unescape_8bit(values[0], hint) if values else ""

    defects.extend(
        f"no {name} field"
        for name in ("From", "Date")
        if msg.get(name) is None  # RFC 5322 3.6
    )
    defects.extend(
        f"repeated {name} field"
        for name in ("Subject", "Message-ID", "In-Reply-To", "References")
        if len(raw_values(msg, name)) > 1
    )
    content = body(msg, defects, spans)
    from_, sender = addresses("From"), addresses("Sender")
    reason = automatic(msg, header, (*from_, *sender))
    return ParsedMessage(
        message_id=first_msgid(ids("Message-ID")),
        subject=header("Subject"),
        from_=from_,
        to=addresses("To"),
        cc=addresses("Cc"),
        reply_to=addresses("Reply-To"),
        sender=sender,
        date=date(msg, defects),
        in_reply_to=first_msgid(ids("In-Reply-To")),
        references=tuple(MSGID.findall(ids("References"))),
        text=content.text,
        html=content.html,
        attachments=content.attachments,
        auto_submitted=reason,
        kind=kind(msg, header, reason),
        language=language.detect(content.text),
        parts=content.parts,
        charsets=content.charsets,
        headers=fields(msg, hint),
        defects=tuple(dict.fromkeys(defects)),
    )


def _normalise_header_block(raw: bytes, defects: list[str]) -> bytes:
    """Undo two things the stdlib parser cannot read: a leading BOM, and the obsolete
    RFC 5322 section 4.5 syntax of whitespace between a field name and its colon."""
    end = _HEADER_END.search(raw)
    split = end.start() if end else len(raw)
    head = raw[:split]  # the body is not copied unless the header changes
    # A receiving server may have put trace fields before the BOM, so look at every line.
    head, boms = _BOM_AT_LINE_START.subn(rb"\1", head)
    if boms:
        defects.append("byte order mark before the header")
    head, obsolete = _OBS_FIELD_NAME.subn(rb"\1:", head)
    if obsolete:
        defects.append("whitespace between a field name and its colon")
    return head + raw[split:] if boms or obsolete else raw


def _declared_charset(msg: Message) -> str | None:
    """The first charset the message declares for its text: raw 8-bit header bytes that are
    not UTF-8 are, in practice, in the same charset as the body."""
    try:
        for part in msg.walk():
            if part.get_content_maintype() == "text" and part.get_content_charset():
                return part.get_content_charset()
    except RecursionError:  # absurdly deep nesting; the body reader reports it
        pass
    return None


def has_header_fields(raw: bytes) -> bool:
    """Whether the bytes start like a message: a header field besides trace fields, as
    `parse` reads them, without reading the body."""
    if not raw or raw.isspace():
        return False
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    fields = email.message_from_bytes(_normalise_header_block(head + b"\n\n", []), policy=READING)
    return any(k.lower() not in _TRACE for k in fields)


def _unreadable(reason: str) -> ParsedMessage:
    return ParsedMessage(
        message_id=None,
        subject="",
        from_=(),
        to=(),
        cc=(),
        reply_to=(),
        sender=(),
        date=None,
        in_reply_to=None,
        references=(),
        text="",
        html=None,
        attachments=(),
        auto_submitted=None,
        defects=(reason,),
        fatal=reason,
    )
