"""Header fields as received: unfolded raw values, their decoded text, ids and dates."""

from __future__ import annotations

import email.utils
import re
from datetime import datetime
from email.message import Message

from mailport.mail.words import decode_words

MSGID = re.compile(r"<[^<>\s]+>")
# RFC 5322 section 4.5.4: the obsolete syntax allows comments and folding inside an id.
_OBS_MSGID = re.compile(r"<[^<>]+@[^<>]+>")
_CFWS = re.compile(r"\([^()]*\)|\s+")
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"[\r\n]")


def header_text(msg: Message, name: str, hint: str | None) -> str:
    """The first field of that name, decoded and unfolded (a repeated Subject is a defect,
    and the first is what clients show). Spaces are kept as sent; a tab reads as a space."""
    values = raw_values(msg, name)
    return decode_words(values[0], hint).replace("\t", " ").strip() if values else ""


def fields(msg: Message, hint: str | None) -> tuple[tuple[str, str], ...]:
    """Every field in order, as (name, decoded and unfolded value)."""
    return tuple(
        (name, decode_words(_unfolded(value), hint).replace("\t", " ").strip())
        for name, value in msg.raw_items()
    )


def raw_values(msg: Message, name: str) -> list[str]:
    """Header values as received and unfolded (RFC 5322 section 2.2.3), without the
    registry's parsing, which can raise."""
    wanted = name.lower()
    return [_unfolded(v) for k, v in msg.raw_items() if k.lower() == wanted]


def _unfolded(value: object) -> str:
    return _LINE_BREAK.sub("", _UNFOLD.sub("", str(value)))


def first_msgid(value: str) -> str | None:
    match = MSGID.search(value) or _OBS_MSGID.search(value)
    return _CFWS.sub("", match.group(0)) if match else None


def date(msg: Message, defects: list[str]) -> datetime | None:
    values = raw_values(msg, "Date")
    if not values:
        return None
    try:
        return email.utils.parsedate_to_datetime(values[0])
    except Exception as exc:
        defects.append(f"Date: {type(exc).__name__}")
        return None
