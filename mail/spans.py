"""Large base64 bodies set aside before the stdlib parser sees them.

The stdlib parser holds a body as a list of lines and then joins them: a 20 MB attachment
costs it about 150 MB. Long runs of base64 lines are swapped for one token line each before
parsing, and read from the original bytes, a chunk at a time, when they are needed."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from email.message import Message

THRESHOLD = 1 << 20  # smaller messages are parsed as they are
_MIN_RUN = 1 << 16
# Any line that cannot be base64: the runs are what lies between them. (A pattern for the
# runs themselves would cost the regex engine a stack entry a line.)
_OTHER_LINE = re.compile(rb"^(?:[^\n]*[^A-Za-z0-9+/=\r\n][^\n]*|\r?|[^\n]{999,})(?:\n|\Z)", re.M)


class Spans:
    def __init__(self, raw: bytes) -> None:
        self._raw = memoryview(raw)
        self._spans: dict[str, tuple[int, int]] = {}

    def set_aside(self) -> bytes:
        """The message with each long base64 run replaced by a token line."""
        raw = self._raw.obj
        assert isinstance(raw, bytes)
        if len(raw) < THRESHOLD:
            return raw
        nonce = secrets.token_hex(8)  # a token no sender can have written
        pieces: list[bytes] = []
        position = 0
        for start, end in _runs(raw):
            token = f"mailport-span-{nonce}-{len(self._spans)}"
            self._spans[token] = (start, end)
            ending = b"\r\n" if raw[end - 2 : end] == b"\r\n" else b"\n"
            pieces += [raw[position:start], token.encode(), ending]
            position = end
        if not self._spans:
            return raw
        pieces.append(raw[position:])
        return b"".join(pieces)

    def lookup(self, payload: object) -> memoryview | None:
        """The original bytes a payload stands for, when it is a token."""
        if not self._spans or not isinstance(payload, str) or len(payload) > 80:
            return None
        span = self._spans.get(payload.strip())
        return self._raw[span[0] : span[1]] if span else None

    def restore(self, data: bytes) -> bytes:
        """Serialised parts with their set-aside runs put back, in CRLF lines as the SMTP
        policy writes them."""
        for token, (start, end) in self._spans.items():
            head, found, tail = data.partition(token.encode())
            if found:
                original = bytes(self._raw[start:end]).replace(b"\r\n", b"\n")
                tail = tail.removeprefix(b"\r\n") if tail.startswith(b"\r\n") else tail
                data = head + original.replace(b"\n", b"\r\n") + tail.removeprefix(b"\n")
        return data

    def resolve(self, part: Message) -> None:
        """Put a part's own text back, for the readers that need all of it at once."""
        original = self.lookup(part.get_payload())
        if original is not None:
            part.set_payload(bytes(original).decode("ascii"))


def _runs(raw: bytes) -> Iterator[tuple[int, int]]:
    previous_end = 0
    for line in _OTHER_LINE.finditer(raw):
        if line.start() - previous_end >= _MIN_RUN:
            yield previous_end, line.start()
        previous_end = line.end()
    if len(raw) - previous_end >= _MIN_RUN and raw.endswith(b"\n"):
        yield previous_end, len(raw)
