"""Files that hold several messages, mbox style: each starts at a "From " line."""

from __future__ import annotations

import re

# A "From " line starts a message after a blank line (mboxo/mboxrd), or anywhere when it
# carries an asctime date, as writers that leave no blank line still write it.
_SEPARATOR = re.compile(
    rb"(?:^|\r?\n\r?\n)From [^\r\n]*\r?\n"
    rb"|(?<=\n)From \S+ +[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}[^\r\n]*\r?\n"
)


def messages(raw: bytes) -> list[bytes]:
    """The messages of an mbox file; a file that is not one is one message."""
    if not raw.startswith(b"From "):
        return [raw]
    found = list(_SEPARATOR.finditer(raw))
    starts = [m.end() for m in found]
    # The blank line before "From " belongs to the separator; the line end before it does not.
    ends = [_end_before(raw, m) for m in found[1:]] + [len(raw)]
    return [_unescaped(raw[s:e]) for s, e in zip(starts, ends, strict=True)]


def _end_before(raw: bytes, separator: re.Match[bytes]) -> int:
    if raw.startswith(b"From ", separator.start()):
        return separator.start()
    return raw.index(b"\n", separator.start()) + 1


def _unescaped(message: bytes) -> bytes:
    # mboxrd: a body line that began "From " was written ">From "; take one ">" off.
    return re.sub(rb"(?m)^>(>*From )", rb"\1", message)
