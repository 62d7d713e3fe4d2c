"""Content-Transfer-Encoding, decoded leniently: keep every byte that can be recovered.

The stdlib hands back the still-encoded text when base64 is damaged (a truncated last
group, stray characters), which turns a 174-byte image into 233 bytes of base64."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_CHUNK = 1 << 16  # characters of encoded text read at a time: a multiple of 4


@dataclass(frozen=True, slots=True)
class Digest:
    size: int
    sha256: str
    defect: str | None


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


def digest_base64(text: str | memoryview) -> Digest:
    """Size and SHA-256 of what decode_base64 would return, read a chunk at a time, so a
    large attachment is never held decoded beside its encoded form."""
    sha, size, stray, carry = hashlib.sha256(), 0, 0, b""
    for start in range(0, len(text), _CHUNK):
        piece = text[start : start + _CHUNK]
        chunk = piece.encode("ascii", "ignore") if isinstance(piece, str) else bytes(piece)
        padding = chunk.find(b"=")  # padding ends the data; anything after it is noise
        chunk = chunk if padding < 0 else chunk[:padding]
        clean = _NOT_BASE64.sub(b"", chunk)
        stray += len(chunk) - len(clean) - chunk.count(b"\n") - chunk.count(b"\r")
        clean = carry + clean
        whole = len(clean) - len(clean) % 4
        data = base64.b64decode(clean[:whole])
        sha.update(data)
        size += len(data)
        carry = clean[whole:]
        if padding >= 0:
            break
    defect = None
    if len(carry) == 1:
        carry, defect = b"", "base64: truncated last group"
    if carry:
        data = base64.b64decode(carry + b"=" * (-len(carry) % 4))
        sha.update(data)
        size += len(data)
    if stray > 0 and not defect:
        defect = "base64: characters outside the alphabet ignored"
    return Digest(size, sha.hexdigest(), defect)
