"""Reply codes (RFC 5321) and enhanced status codes (RFC 3463) found in a server's words."""

from __future__ import annotations

import re

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_REPLY = re.compile(r"(?<![\d.])([45][0-5]\d)(?:[ :,-]|$)(?!\.)")


def status_in(text: str) -> str:
    """The first enhanced status code in the text, or ''."""
    match = _STATUS.search(text)
    return ".".join(match.groups()) if match else ""


# "421 example.org (smtp)... Deferred: …": Sendmail's note of its own retry, not a reply.
_SENDMAIL_RETRY = re.compile(r"\s*\S+ \(\w+\)\.\.\. Deferred")
_REFUSALS = {
    421,
    450,
    451,
    452,
    455,
    500,
    501,
    502,
    503,
    504,
    521,
    550,
    551,
    552,
    553,
    554,
    555,
    556,
}


def statuses_in(text: str) -> list[str]:
    """Every enhanced status code in the text, in order."""
    return [".".join(m.groups()) for m in _STATUS.finditer(text)]


def reply_code_in(text: str) -> int | None:
    """The last SMTP reply code of a refusal in the text (where replies nest, the last is
    the remote server's), or None. Only codes RFC 5321 and RFC 7504 define count."""
    codes = [
        int(m.group(1))
        for m in _REPLY.finditer(text)
        if int(m.group(1)) in _REFUSALS and not _SENDMAIL_RETRY.match(text, m.end())
    ]
    return codes[-1] if codes else None


def status_from_reply(code: int | None) -> str:
    """The class alone, when a server gave a reply code and no enhanced status."""
    return f"{code // 100}.0.0" if code is not None and 200 <= code < 600 else ""
