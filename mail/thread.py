"""The key that keeps one conversation on one router shard, read from the header alone."""

from __future__ import annotations

import hashlib
import re
import zlib
from email.parser import BytesHeaderParser
from email.policy import compat32

_MSGID = re.compile(r"<[^<>\s]+>")


def thread_key(raw: bytes) -> str:
    """The conversation's root Message-ID (References, else In-Reply-To, else its own id);
    a hash of the bytes when the message carries none."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
        for name in ("References", "In-Reply-To", "Message-ID"):
            ids = _MSGID.findall(str(headers.get(name, "")))
            if ids:
                return str(ids[0])
    except Exception:  # the header parser is lenient; any failure falls back to the hash
        pass
    return hashlib.sha256(raw).hexdigest()


def shard_for(key: str, shards: int) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % shards
