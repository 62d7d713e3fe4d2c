"""Read receipts (RFC 8098, RFC 3798): what the recipient's client did with the message."""

from __future__ import annotations

from mailport.mail.headers import MSGID
from mailport.mail.receipts.fields import read_fields
from mailport.mail.receipts.model import Receipt


def from_mdn(text: str, original: str | None) -> Receipt:
    read = read_fields(text)
    fields = {**read.per_message, **(read.recipients[0] if read.recipients else {})}
    disposition = fields.get("disposition", "")
    # "manual-action/MDN-sent-manually; displayed/…": the word after the semicolon.
    said = disposition.partition(";")[2].strip().split("/")[0].strip().lower() or None
    ids = MSGID.findall(fields.get("original-message-id") or "")
    return Receipt("mdn", str(ids[0]) if ids else original, disposition=said)
