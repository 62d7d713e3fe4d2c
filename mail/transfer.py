"""Content-Transfer-Encoding, decoded leniently: keep every byte that can be recovered.

The stdlib hands back the still-encoded text when base64 is damaged (a truncated last
group, stray characters), which turns a 174-byte image into 233 bytes of base64."""

from __future__ import annotations

import base64
import re

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def decode_base64(data: bytes) -> tuple[bytes, str | None]:
    """The decoded bytes and, when the input was damaged, a defect saying how."""
    body = data.split(b"=", 1)[0]  # padding ends the data; anything after it is noise
    clean = _NOT_BASE64.sub(b"", body)
    stray = len(_NOT_BASE64.findall(body)) - body.count(b"\n") - body.count(b"\r")
    dangling = len(clean) % 4
    defect = None
    if dangling == 1:  # a lone character cannot carry a byte
        clean = clean[:-1]
        defect = "base64: truncated last group"
    if stray > 0 and not defect:
        defect = "base64: characters outside the alphabet ignored"
    clean += b"=" * (-len(clean) % 4)
    return base64.b64decode(clean), defect
