"""Reply codes (RFC 5321) and enhanced status codes (RFC 3463) found in a server's words."""

from __future__ import annotations

import re

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_REPLY = re.compile(r"(?<![\d.])([45][0-5]\d)(?:[ :,-]|$)(?!\.)")


def status_in(text: str) -> str:
    """The first enhanced status code in the text, or ''."""
    match = _STATUS.search(text)
    return ".".join(match.groups()) if match else ""


def statuses_in(text: str) -> list[str]:
    """Every enhanced status code in the text, in order."""
    return [".".join(m.groups()) for m in _STATUS.finditer(text)]


def reply_code_in(text: str) -> int | None:
    """The first SMTP reply code of a refusal (4xx or 5xx) in the text, or None."""
    for match in _REPLY.finditer(text):
        return int(match.group(1))
    return None


def status_from_reply(code: int | None) -> str:
    """The class alone, when a server gave a reply code and no enhanced status."""
    return f"{code // 100}.0.0" if code is not None and 200 <= code < 600 else ""
