"""The parts of a report: the machine-readable one, the words for people, what came back.

Python's parser splits a message/delivery-status body into header blocks, and cannot when
the part is base64 or its blank lines are wrong; so report parts are read as text here."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message

from mailport.mail.charsets import decode
from mailport.mail.html_text import html_to_text
from mailport.mail.unfolding import READING

_REPORT_TYPES = re.compile(
    rb"(content-type:[ \t]*)message/((?:global-)?(?:delivery-status|disposition-notification)"
    rb"|feedback-report)",
    re.IGNORECASE,
)
REPORT_PREFIX = "text/x-report-"


@dataclass
class Report:
    message: Message
    reports: dict[str, list[str]] = field(default_factory=dict)
    """Report parts by type (delivery-status, global-delivery-status, …): their text."""
    notice: str = ""
    """The words for people: the first text part that is not the returned message."""
    returned: Message | None = None
    """The returned message, or its headers."""
    returned_text: str = ""
    subject: str = ""
    """Decoded, from the raw bytes: 8-bit subjects are UTF-8 more often than not."""


def read(raw: bytes) -> Report:
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if raw.startswith(b"From "):  # an mbox separator line
        raw = raw.partition(b"\n")[2]
    message = email.message_from_bytes(
        _REPORT_TYPES.sub(rb"\1" + REPORT_PREFIX.encode() + rb"\2", raw), policy=READING
    )
    report = Report(message, subject=_subject(raw))
    _walk(message, report, top=True)
    return report


_SUBJECT = re.compile(rb"^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def _subject(raw: bytes) -> str:
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    match = _SUBJECT.search(head)
    if match is None:
        return ""
    value = b" ".join(match.group(1).split()).decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a broken encoded word: read what is there
        return value


def _walk(part: Message, report: Report, top: bool = False) -> None:
    ctype = part.get_content_type()
    if ctype.startswith(REPORT_PREFIX):
        kind = ctype.removeprefix(REPORT_PREFIX)
        report.reports.setdefault(kind, []).append(text_of(part))
    elif ctype in ("message/rfc822", "message/global") and not top:
        if report.returned is None:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                report.returned = inner[0]
    elif ctype in ("text/rfc822-headers", "text/global-headers") and not top:
        if report.returned is None:
            report.returned_text = text_of(part)
            report.returned = email.message_from_string(report.returned_text, policy=READING)
    elif part.is_multipart():
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else ():
            if isinstance(sub, Message):
                _walk(sub, report)
    elif part.get_content_maintype() == "multipart" and not report.notice:
        payload = part.get_payload()  # its boundary never came: the body is plain text
        report.notice = payload if isinstance(payload, str) else ""
    elif part.get_content_maintype() == "text" and not report.notice and _readable(part, top):
        text = text_of(part)
        report.notice = html_to_text(text) if part.get_content_subtype() == "html" else text


def _readable(part: Message, top: bool) -> bool:
    return top or part.get_content_disposition() != "attachment"


def text_of(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    return decode(data, part.get_content_charset()).text
