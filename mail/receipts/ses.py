"""Amazon SES notifications sent by email through SNS: one JSON object per message."""

from __future__ import annotations

import json
import re
from typing import Any

from mailport.mail.receipts.codes import reply_code_in, status_from_reply, status_in
from mailport.mail.receipts.model import Receipt, RecipientStatus
from mailport.mail.receipts.reasons import is_hard, reason_for

# Mail systems break long lines with "!" and a folding space; the JSON has no such breaks.
_BROKEN_LINE = re.compile(r"!\r?\n ")


def from_ses(text: str) -> Receipt | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or '"notificationType"' not in text:
        return None
    try:
        note = json.loads(_BROKEN_LINE.sub("", text[start : end + 1]))
    except ValueError:
        return None
    kind = str(note.get("notificationType", "")).lower()
    mail = note.get("mail", {})
    original = f"<{mail['messageId']}@email.amazonses.com>" if mail.get("messageId") else None
    if kind == "complaint":
        feedback = note.get("complaint", {}).get("complaintFeedbackType") or "abuse"
        return Receipt("feedback", original, feedback_type=str(feedback).lower())
    if kind == "delivery":
        delivery = note.get("delivery", {})
        said = str(delivery.get("smtpResponse", ""))
        return Receipt(
            "dsn",
            original,
            recipients=tuple(
                _status(str(r), "delivered", said, str(delivery.get("reportingMTA", "")))
                for r in delivery.get("recipients", [])
            ),
        )
    if kind == "bounce":
        bounce: dict[str, Any] = note.get("bounce", {})
        action = "delayed" if bounce.get("bounceType") == "Transient" else "failed"
        return Receipt(
            "dsn",
            original,
            recipients=tuple(
                _status(
                    str(r.get("emailAddress", "")),
                    action,
                    str(r.get("diagnosticCode") or r.get("status") or ""),
                    str(bounce.get("reportingMTA", "")),
                )
                for r in bounce.get("bouncedRecipients", [])
            ),
        )
    return None


def _status(recipient: str, action: str, said: str, remote: str) -> RecipientStatus:
    code = reply_code_in(said) if action != "delivered" else _any_code(said)
    status = status_in(said) or status_from_reply(code)
    reason = reason_for(status, code, said, action)
    return RecipientStatus(
        recipient=recipient,
        action=action,
        status=status,
        reply_code=code,
        reason=reason,
        hard_bounce=action == "failed" and is_hard(reason, status),
        diagnostic=said,
        remote_mta=remote.removeprefix("dns;").strip(),
    )


def _any_code(said: str) -> int | None:
    match = re.match(r"\s*([2-5]\d\d)\b", said)
    return int(match.group(1)) if match else None
