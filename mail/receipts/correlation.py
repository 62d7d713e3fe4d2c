"""What ties a receipt to the message it answers.

Each message we send carries its queue id twice: in the ENVID a DSN brings back (RFC 3461),
and, with VERP, in the return path the report is sent to. Reports without either still
quote a Message-ID: the original's, in an MDN or in the returned headers, or the one an
auto-reply answers in In-Reply-To."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import Message

from mailport.mail.headers import MSGID
from mailport.mail.receipts.model import Receipt
from mailport.mail.unfolding import READING

_TAG = re.compile(r"(?<![\w.])mailport\.(\d+)(?![\w])")
# Where a report addressed to a VERP return path names it.
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


def envelope_tag(mail_id: int) -> str:
    """The ENVID of a queued message, and the tag of its VERP return path."""
    return f"mailport.{mail_id}"


def verp_sender(sender: str, mail_id: int) -> str:
    """`news@example.com` → `news+mailport.42@example.com`: bounces come back addressed
    to the message they report on (VERP)."""
    local, at, domain = sender.rpartition("@")
    if not at or not sender:
        return sender  # the null sender stays null
    return f"{local}+{envelope_tag(mail_id)}@{domain}"


def tagged_ids(receipt: Receipt, raw: bytes) -> list[int]:
    """Queue ids the receipt carries: its ENVID, then VERP addresses it was delivered to."""
    found = [int(m) for m in _TAG.findall(receipt.envelope_id or "")]
    message = _headers(raw)
    for name in _ENVELOPE_HEADERS:
        for value in message.get_all(name) or ():
            found.extend(int(m) for m in _TAG.findall(str(value)))
    return list(dict.fromkeys(found))


def quoted_ids(receipt: Receipt, raw: bytes) -> list[str]:
    """Message-IDs the receipt quotes: the original's, or what an auto-reply answers."""
    found = [receipt.original_message_id] if receipt.original_message_id else []
    if receipt.kind == "autoreply":
        message = _headers(raw)
        for name in ("In-Reply-To", "References"):
            found.extend(MSGID.findall(str(message.get(name, ""))))
    return list(dict.fromkeys(found))


def _headers(raw: bytes) -> Message:
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    return message_from_bytes(head, policy=READING)
