"""Header text: RFC 2047 encoded words, and raw 8-bit bytes, decoded as their writer meant.

The stdlib registry keeps the space between adjacent encoded words (RFC 2047 section 6.2
says to drop it), gives up on charset labels it does not know, and cannot join a multibyte
character split across two words. Raw 8-bit header bytes, which the email package keeps as
surrogate escapes, are UTF-8 (RFC 6532) or, in legacy mail, in the body's charset."""

from __future__ import annotations

import base64
import binascii
import re

from mailport.mail import charsets

_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def decode_words(value: str, hint: str | None = None) -> str:
    value = unescape_8bit(value, hint)
    if "=?" not in value:
        return value
    out: list[str] = []
    run: list[bytes] = []
    run_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal run, run_charset
        if run:
            out.append(charsets.decode(b"".join(run), run_charset)[0])
        run, run_charset = [], None

    for match in _WORD.finditer(value):
        between = value[position : match.start()]
        charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 adds *language
        data = _payload(match.group(2), match.group(3))
        adjacent = bool(run) and not between.strip()  # only space since the last word
        if data is None or not adjacent or charset != run_charset:
            flush()
        if not adjacent:
            out.append(between)
        if data is None:  # not really an encoded word: keep its text as it stands
            out.append(match.group(0))
        else:
            run.append(data)
            run_charset = charset
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out)


def unescape_8bit(value: str, hint: str | None = None) -> str:
    if not any("\udc80" <= c <= "\udcff" for c in value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return charsets.decode(data, hint)[0]


def _payload(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            return base64.b64decode(text + "=" * (-len(text) % 4))
        return binascii.a2b_qp(text.encode("ascii"), header=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
