"""Delivery receipts: what came back for a message we sent, read from the mail itself.

`classify(raw)` says which of dsn | mdn | autoreply | feedback | normal a message is and, for
reports, what it says of each recipient. Pure: no I/O."""

from mailport.mail.receipts.classify import classify
from mailport.mail.receipts.codes import reply_code_in, status_from_reply, status_in
from mailport.mail.receipts.model import Receipt, RecipientStatus
from mailport.mail.receipts.reasons import REASONS, is_hard, reason_for

__all__ = [
    "REASONS",
    "Receipt",
    "RecipientStatus",
    "classify",
    "is_hard",
    "reason_for",
    "reply_code_in",
    "status_from_reply",
    "status_in",
]
