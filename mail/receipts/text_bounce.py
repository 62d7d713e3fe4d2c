"""Bounces written for people only (qmail, Exim, Gmail, Exchange, carriers): telling them
from other mail, and reading each recipient's status from the words."""

from __future__ import annotations

import re
from email import message_from_string
from email.message import Message

from mailport.mail.receipts import notice as notices
from mailport.mail.receipts.codes import reply_code_in, status_from_reply, status_in
from mailport.mail.receipts.dsn import recipient_status
from mailport.mail.receipts.model import Receipt
from mailport.mail.receipts.reading import Report

_BOUNCE_SENDER = re.compile(
    r"(mailer[-_]?daemon|post[-_]?master|mail[-_]?delivery|mail[-_]?administrator|bounce"
    r"|mail[-_]?system|nobody|root|dsn)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|delivery (?:status notification|failure|failed"
    r"|report|problem|notification)|failure notice|mail delivery|non[- ]?delivery|"
    r"could not be delivered|delivery has failed|returned to sender|nicht zustellbar"
    r"|unzustellbar|non remis|no entregado|mail system error|warning: could not send"
    r"|permanent error|delivery error|message (?:not delivered|failure|error)|bounce"
    r"|error sending|unable to deliver|rejected|mail could not|not delivered|mail failure"
    r"|\u914d\u4fe1\u30a8\u30e9\u30fc|\u4e0d\u9054|\u9001\u4fe1\u30a8\u30e9\u30fc"
    r"|\u30e1\u30fc\u30eb\u30a8\u30e9\u30fc"
    r"|\u30e1\u30fc\u30eb\u304c\u5c4a\u304d\u307e\u305b\u3093",
    re.IGNORECASE,
)
# Where a notice starts quoting what the other server said.
_QUOTED_REPLY = re.compile(
    r"(?:the error that the other server returned was|remote (?:host|server) (?:said|replied)"
    r"|the server responded with|-------server message)\s*:?",
    re.IGNORECASE,
)
_QMAIL_CODE = re.compile(r"\(#[45]\.\d\.\d+\)")
_DELAYED = re.compile(
    r"will (?:continue|keep) (?:to )?(?:try|retr)|still trying|has not yet been delivered"
    r"|warning: message .* delayed|delivery (?:has been )?delayed|temporary (?:failure|problem)"
    r"|this is (?:only )?a warning|no action is required on your part",
    re.IGNORECASE,
)


def from_notice(report: Report, original: str | None) -> Receipt | None:
    notice, returned = notices.split(report.notice)
    ignore = {a.lower() for a in _addresses(report.message, ("From", "To", "Reply-To", "Sender"))}
    if report.returned is not None:
        ignore |= {a.lower() for a in _addresses(report.returned, ("From", "Sender", "Reply-To"))}
    named = tuple(
        a.lower() for a in _addresses(report.message, ("X-Failed-Recipients",)) if a.lower()
    )
    found = notices.recipients(notice, ignore, tuple(dict.fromkeys(named)))
    original_message = report.returned or (_headers(returned) if returned else None)
    if not found and original_message is not None:
        # The notice names nobody (Sendmail's "Cannot send message for 4 days"): the
        # returned message says whom it was for.
        found = [(a, "") for a in _addresses(original_message, ("To", "Cc")) if a not in ignore]
    if not found:
        return None
    evidence = named or returned or report.returned is not None or _codes_in(notice)
    if not evidence and _auto_replied_by_an_account(report.message):
        # An auto-responder's words about a rejection, with nothing a mail system leaves
        # (no failed-recipients field, returned message or reply code): not a DSN.
        return None
    delayed = bool(_DELAYED.search(notice))
    out = []
    flat = " ".join(notice.split())
    for recipient, words in found:
        diagnostic = _focus(words)
        if len(found) == 1 and not (status_in(words) or reply_code_in(words)):
            # One recipient, and no code beside it: the whole notice is about it.
            diagnostic = _focus(" ".join(filter(None, [words, flat])))
        status = status_in(diagnostic)
        code = reply_code_in(diagnostic)
        if not status:
            status = status_from_reply(code) or ("4.0.0" if delayed else "5.0.0")
        action = "delayed" if delayed else "failed"
        out.append(recipient_status(recipient, action, status, diagnostic, "", flat))
    original = original or _returned_id(returned)
    return Receipt("dsn", original, None, tuple(out))


def _focus(words: str) -> str:
    """The server's own words, where a notice quotes them after its boilerplate."""
    marks = list(_QUOTED_REPLY.finditer(words))
    return words[marks[-1].end() :].strip() if marks else words


def is_text_bounce(message: Message, report: Report) -> bool:
    """A notice from a mail system, as opposed to a person's mail or an auto-reply."""
    if message.get("X-Failed-Recipients"):
        return True
    sender = " ".join(str(message.get(h, "")) for h in ("From", "Sender"))
    subject = report.subject
    null_sender = str(message.get("Return-Path", "")).replace(" ", "") in ("<>", "<<>>")
    if _BOUNCE_SENDER.search(sender):
        return True
    if null_sender and report.returned is not None:
        return True  # nobody writes from the null sender, and this returns a message
    return (null_sender or report.returned is not None) and bool(_BOUNCE_SUBJECT.search(subject))


def _auto_replied_by_an_account(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    daemon = re.search(r"mailer[-_]?daemon", str(message.get("From", "")), re.IGNORECASE)
    return submitted.startswith("auto-replied") and daemon is None


def _codes_in(text: str) -> bool:
    return bool(status_in(text) or reply_code_in(text) or _QMAIL_CODE.search(text))


def _headers(text: str) -> Message:
    """The header block of a message returned as text after the notice."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = next((i for i, line in enumerate(lines) if re.match(r"[\w-]+:", line.strip())), 0)
    # Take off the indent the whole block has (some notices indent what they return), and
    # no more: a folded field's continuation lines keep theirs, or its field would end there.
    indent = len(lines[start]) - len(lines[start].lstrip()) if lines else 0
    kept = (
        line[indent:] if line[:indent].strip() == "" else line.lstrip() for line in lines[start:]
    )
    return message_from_string("\n".join(kept))


def _returned_id(text: str) -> str | None:
    match = re.search(r"^message-id:\s*(<[^>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else None


def _addresses(message: Message, names: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for name in names:
        for value in message.get_all(name) or ():
            found.extend(re.findall(r"[\w.+=-]+@[\w.-]+", str(value)))
    return found
