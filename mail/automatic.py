"""Automatic mail (RFC 3834) and a first cut of each message's kind."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message

from mailport.mail.message import Address

# Mailboxes that are machines: nobody reads an answer sent to them.
_MACHINES = re.compile(
    r"^(mailer[-_]?daemon|mail-daemon|post[-_]?master|no[-_]?reply|do[-_]?not[-_]?reply"
    r"|bounces?)([-+.].*)?$",
    re.IGNORECASE,
)
# Subjects that helpdesks treat as automatic when no header says so: out-of-office notes
# and non-delivery reports in the languages of the clients that send them.
_AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|automatische antwort"
    r"|réponse automatique|respuesta automática|risposta automatica|autosvar"
    r"|automatisch antwoord|undeliverable|undelivered mail|delivery status notification"
    r"|mail delivery (failed|failure|system)|returned mail|failure notice"
    r"|delivery failure|non[- ]?delivery)\b",
    re.IGNORECASE,
)
_SUPPRESS = {"all", "dr", "ndr", "rn", "nrn", "oof", "autoreply"}


def automatic(
    msg: Message, header: Callable[[str], str], senders: tuple[Address, ...]
) -> str | None:
    """Why this message must never be answered automatically (RFC 3834), or None.

    Auto-replies, delivery and read reports and list traffic are answered by nobody: a
    reply to them is how mail loops start."""
    value = header("Auto-Submitted").lower()
    if value and not value.startswith("no"):
        return f"Auto-Submitted: {value}"
    if msg.get_content_type() == "multipart/report":
        return f"a {msg.get_param('report-type') or 'delivery'} report"
    if header("Return-Path").replace(" ", "") in ("<>", "<<>>"):
        return "null sender (Return-Path: <>)"
    for sender in senders:
        if _MACHINES.match(sender.address.rpartition("@")[0]):
            return f"sent by a machine ({sender.address})"
    precedence = header("Precedence").lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"Precedence: {precedence}"
    suppress = {v.strip().lower() for v in header("X-Auto-Response-Suppress").split(",")}
    if suppress & _SUPPRESS:
        return f"X-Auto-Response-Suppress: {header('X-Auto-Response-Suppress')}"
    for name in (
        "X-Autoreply",
        "X-Autorespond",
        "List-Id",
        "List-Unsubscribe",
        "List-Post",
        "X-MLServer",
    ):
        if header(name):
            return f"{name} present"
    if _AUTOMATIC_SUBJECT.match(header("Subject")):
        return f"automatic subject: {header('Subject')[:60]}"
    return None


_REPORTS = {
    "delivery-status": "dsn",
    "global-delivery-status": "dsn",
    "disposition-notification": "mdn",
    "global-disposition-notification": "mdn",
    "feedback-report": "feedback",
}
_OUT_OF_OFFICE = re.compile(
    r"auto(matic)?[ -]?(reply|response)|out of (the )?office|automatische antwort"
    r"|réponse automatique|respuesta automática|risposta automatica|autosvar"
    r"|automatisch antwoord",
    re.IGNORECASE,
)


_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status|failure|failed|notification|problem)|returned mail"
    r"|failure notice|non[- ]?delivery|mail delivery|could not (be )?deliver|mail system error"
    r"|メールエラー|配信",
    re.IGNORECASE,
)
_MAIL_SYSTEM = re.compile(r"mailer[-_]?daemon|post[-_]?master|mail[-_]?delivery", re.IGNORECASE)


def kind(msg: Message, header: Callable[[str], str], automatic: str | None) -> str:
    """A first cut of what the message is: a report by its MIME type (RFC 3462); else, for
    automatic mail, a bounce by its sender or subject, or an auto-reply by its markers.
    Other automatic mail (lists, bulk, no-reply senders) is normal mail nobody answers."""
    try:
        types = {part.get_content_type() for part in msg.walk()}
    except RecursionError:
        types = {msg.get_content_type()}
    report = str(msg.get_param("report-type") or "").lower()
    for name, kind in _REPORTS.items():
        if report == name or f"message/{name}" in types:
            return kind
    if automatic is None:
        return "normal"
    subject = header("Subject")
    if _BOUNCE_SUBJECT.search(subject) or _MAIL_SYSTEM.search(header("From")):
        return "dsn"
    if (
        "auto-replied" in automatic
        or "autoreply" in automatic.lower()
        or (_OUT_OF_OFFICE.search(subject))
    ):
        return "autoreply"
    return "dsn" if automatic.startswith(("a ", "null sender")) else "normal"
