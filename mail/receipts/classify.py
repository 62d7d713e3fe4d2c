"""Which kind of message this is, and what a report says of each recipient.

Report parts decide first (RFC 5965 feedback, RFC 8098 MDN, RFC 3464 DSN), then report fields
pasted into the text, Amazon SES notifications, a list manager's refusal of a post, bounces
written for people, and last the signs of an auto-reply (RFC 3834)."""

from __future__ import annotations

import re
from email.message import Message

from mailport.mail.headers import MSGID
from mailport.mail.receipts.automatic_reply import is_autoreply
from mailport.mail.receipts.dsn import from_report
from mailport.mail.receipts.fields import read_fields
from mailport.mail.receipts.list_manager import from_list_manager
from mailport.mail.receipts.mdn import from_mdn
from mailport.mail.receipts.model import Receipt
from mailport.mail.receipts.reading import Report, read
from mailport.mail.receipts.ses import from_ses
from mailport.mail.receipts.text_bounce import from_notice, is_text_bounce

_PASTED_FIELDS = re.compile(
    r"^(?:Reporting-MTA|Original-Recipient|Final-Recipient)[ \t]*:", re.IGNORECASE | re.MULTILINE
)


def classify(raw: bytes) -> Receipt:
    """dsn | mdn | autoreply | feedback | normal, with what the report says."""
    report = read(raw)
    original = _original_id(report)
    if "feedback-report" in report.reports:
        fields = read_fields(report.reports["feedback-report"][0]).per_message
        return Receipt("feedback", original, feedback_type=fields.get("feedback-type", "").lower())
    for kind in ("disposition-notification", "global-disposition-notification"):
        if kind in report.reports:
            return from_mdn(report.reports[kind][0], original)
    for kind in ("delivery-status", "global-delivery-status"):
        if kind in report.reports:
            found = from_report(report, "\n\n".join(report.reports[kind]), original)
            if not found.recipients:  # no recipient groups: the notice may name them
                words = from_notice(report, original)
                if words is not None:
                    return Receipt("dsn", original, found.envelope_id, words.recipients)
            return found
    pasted = _PASTED_FIELDS.search(report.notice)
    if pasted is not None:  # a report part the MIME structure lost, or pasted in the text
        found = from_report(report, report.notice[pasted.start() :], original)
        if found.recipients:
            return found
    if "amazonses" in report.notice.lower():
        ses = from_ses(report.notice)
        if ses is not None:
            return ses
    inner = _forwarded_report(report)
    if inner is not None:  # a bounce forwarded whole, as a message inside a message
        return inner
    refused = from_list_manager(report, original)
    if refused is not None:
        return refused
    if is_text_bounce(report.message, report):
        words = from_notice(report, original)
        if words is not None:
            return words
    if str(report.message.get("X-Apple-Unsubscribe", "")).strip().lower() == "true":
        # Apple Mail's one-tap unsubscribe, sent to the List-Unsubscribe address: an
        # opt-out the sender must act on, though it is also marked auto-replied.
        return Receipt("feedback", original, feedback_type="opt-out")
    if is_autoreply(report.message):
        return Receipt("autoreply", original or _in_reply_to(report.message))
    return Receipt("normal")


def _forwarded_report(report: Report) -> Receipt | None:
    returned = report.returned
    if returned is None or returned.get_content_type() != "multipart/report":
        return None
    try:
        found = classify(returned.as_bytes())
    except Exception:  # a message the stdlib cannot write back out: read as it stands
        return None
    return found if found.kind != "normal" else None


def _original_id(report: Report) -> str | None:
    if report.returned is not None:
        ids = MSGID.findall(str(report.returned.get("Message-ID", "")))
        if ids:
            return str(ids[0])
    return None


def _in_reply_to(message: Message) -> str | None:
    ids = MSGID.findall(str(message.get("In-Reply-To", "")))
    return str(ids[0]) if ids else None
