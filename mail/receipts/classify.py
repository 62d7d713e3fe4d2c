"""Which kind of message this is, and what a report says of each recipient."""

from __future__ import annotations

import dataclasses
import re
from email.message import Message

from mailport.mail.headers import MSGID
from mailport.mail.receipts import notice as notices
from mailport.mail.receipts.automatic_reply import decoded_header, is_autoreply
from mailport.mail.receipts.codes import reply_code_in, status_from_reply, status_in, statuses_in
from mailport.mail.receipts.fields import read_fields, typed_value
from mailport.mail.receipts.model import Receipt, RecipientStatus
from mailport.mail.receipts.reading import Report, read
from mailport.mail.receipts.reasons import is_hard, reason_for
from mailport.mail.receipts.ses import from_ses

_BOUNCE_SENDER = re.compile(
    r"(mailer[-_]?daemon|postmaster|mail[-_]?delivery|mail[-_]?administrator|bounce"
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
    r"|\u30e1\u30fc\u30eb\u304c\u5c4a\u304d\u307e\u305b\u3093",
    re.IGNORECASE,
)
_EMBEDDED_FIELDS = re.compile(
    r"^(?:Reporting-MTA|Original-Recipient|Final-Recipient)[ \t]*:", re.IGNORECASE | re.MULTILINE
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


def classify(raw: bytes) -> Receipt:
    """dsn | mdn | autoreply | feedback | normal, with what the report says."""
    report = read(raw)
    message = report.message
    original = _original_id(report)
    if "feedback-report" in report.reports:
        fields = read_fields(report.reports["feedback-report"][0]).per_message
        return Receipt("feedback", original, feedback_type=fields.get("feedback-type", "").lower())
    for kind in ("disposition-notification", "global-disposition-notification"):
        if kind in report.reports:
            return _mdn(report.reports[kind][0], original)
    for kind in ("delivery-status", "global-delivery-status"):
        if kind in report.reports:
            text = "\n\n".join(report.reports[kind])
            return _dsn(report, text, original)
    embedded = _EMBEDDED_FIELDS.search(report.notice)
    if embedded is not None:  # a report part the MIME structure lost, or pasted in the text
        pasted = _dsn(report, report.notice[embedded.start() :], original)
        if pasted.recipients:
            return pasted
    ses = from_ses(report.notice) if "amazonses" in report.notice.lower() else None
    if ses is not None:
        return ses
    if _is_text_bounce(message, report):
        found = _from_notice(report)
        if found is not None:
            return found
    if is_autoreply(message):
        return Receipt("autoreply", original or _in_reply_to(message))
    return Receipt("normal")


def _dsn(report: Report, text: str, original: str | None) -> Receipt:
    fields = read_fields(text)
    envelope = fields.per_message.get("original-envelope-id") or None
    out: list[RecipientStatus] = []
    notice, _ = notices.split(report.notice)
    for group in fields.recipients:
        recipient = typed_value(group.get("final-recipient") or group.get("original-recipient", ""))
        diagnostic = typed_value(group["diagnostic-code"]) if "diagnostic-code" in group else ""
        words = _words_about(recipient, notice)
        action = group.get("action", "failed").split()[0].lower() if group.get("action") else ""
        remote = typed_value(group.get("remote-mta", ""))
        given = group.get("status", "")
        status = _status(recipient, action, given, diagnostic or words, remote, words)
        if _by_local_program(group.get("diagnostic-code", ""), status.reason):
            status = dataclasses.replace(status, reason="mailererror", hard_bounce=False)
        out.append(status)
    if not out:  # a report part with no recipient groups: read the notice instead
        found = _from_notice(report)
        if found is not None:
            return Receipt("dsn", original, envelope, found.recipients)
    return Receipt("dsn", original, envelope, tuple(out))


_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
_CLASS_OF = {"delay": "4.0.0", "deliv": "2.0.0", "relay": "2.0.0", "expan": "2.0.0"}


def _action(said: str, status: str) -> str:
    """RFC 3464's action, from what reports write (Action: deliverable, Action: failure)."""
    for action in _ACTIONS:
        if said.startswith(action[:5]):
            return action
    return {"2": "delivered", "4": "delayed"}.get(status[:1], "failed")


def _by_local_program(diagnostic_code: str, reason: str) -> bool:
    """An X-Unix diagnostic is a local delivery program's exit: the mailer failed, whatever
    its words say, unless the system itself is short of something."""
    kind = diagnostic_code.partition(";")[0].strip().lower()
    return kind == "x-unix" and reason not in ("systemerror", "systemfull", "mailboxfull")


def _status(
    recipient: str, action: str, given: str, diagnostic: str, remote: str, context: str = ""
) -> RecipientStatus:
    status = status_in(given)
    said = statuses_in(diagnostic)
    # The server's own code says more than the reporting MTA's Status field (a generic
    # 5.0.0, or 4.4.7 for "gave up"); where codes nest, the last is the remote server's.
    if said and (not status or said[-1][0] == status[0]):
        status = said[-1]
    code = reply_code_in(diagnostic) or reply_code_in(context)
    if code is not None and status and str(code)[0] != status[0]:
        code = None  # a 5xx reply beside a 4.x.x status: the two disagree, trust neither
    if not status:  # the class alone: from the reply, else from the action
        status = status_from_reply(code) or _CLASS_OF.get(action[:5], "5.0.0")
    action = _action(action, status)
    reason = reason_for(status, code, diagnostic, action, context)
    return RecipientStatus(
        recipient=recipient,
        action=action,
        status=status,
        reply_code=code,
        reason=reason,
        hard_bounce=action == "failed" and is_hard(reason, status),
        diagnostic=diagnostic,
        remote_mta=remote,
    )


def _from_notice(report: Report) -> Receipt | None:
    notice, returned = notices.split(report.notice)
    ignore = {a.lower() for a in _addresses(report.message, ("From", "To", "Reply-To", "Sender"))}
    if report.returned is not None:
        ignore |= {a.lower() for a in _addresses(report.returned, ("From", "Sender", "Reply-To"))}
    named = tuple(
        a.lower() for a in _addresses(report.message, ("X-Failed-Recipients",)) if a.lower()
    )
    found = notices.recipients(notice, ignore, tuple(dict.fromkeys(named)))
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
        out.append(_status(recipient, action, status, diagnostic, "", flat))
    original = _original_id(report) or _returned_id(returned)
    return Receipt("dsn", original, None, tuple(out))


def _focus(words: str) -> str:
    """The server's own words, where a notice quotes them after its boilerplate."""
    marks = list(_QUOTED_REPLY.finditer(words))
    return words[marks[-1].end() :].strip() if marks else words


def _is_text_bounce(message: Message, report: Report) -> bool:
    """A notice from a mail system, as opposed to a person's mail or an auto-reply."""
    if message.get("X-Failed-Recipients"):
        return True
    sender = " ".join(str(message.get(h, "")) for h in ("From", "Sender"))
    subject = decoded_header(message, "Subject")
    null_sender = str(message.get("Return-Path", "")).replace(" ", "") in ("<>", "<<>>")
    if _BOUNCE_SENDER.search(sender):
        return True
    return (null_sender or report.returned is not None) and bool(_BOUNCE_SUBJECT.search(subject))


def _auto_replied_by_an_account(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    daemon = re.search(r"mailer[-_]?daemon", str(message.get("From", "")), re.IGNORECASE)
    return submitted.startswith("auto-replied") and daemon is None


def _codes_in(text: str) -> bool:
    return bool(status_in(text) or reply_code_in(text) or _QMAIL_CODE.search(text))


def _mdn(text: str, original: str | None) -> Receipt:
    read = read_fields(text)
    fields = {**read.per_message, **(read.recipients[0] if read.recipients else {})}
    disposition = fields.get("disposition", "")
    # "manual-action/MDN-sent-manually; displayed/…": the word after the semicolon.
    said = disposition.partition(";")[2].strip().split("/")[0].strip().lower() or None
    original_id = fields.get("original-message-id")
    ids = MSGID.findall(original_id or "")
    return Receipt("mdn", ids[0] if ids else original, disposition=said)


def _words_about(recipient: str, notice: str) -> str:
    if not recipient:
        return ""
    for address, words in notices.recipients(notice, set()):
        if address.lower() == recipient.lower():
            return words
    return ""


def _original_id(report: Report) -> str | None:
    if report.returned is not None:
        ids = MSGID.findall(str(report.returned.get("Message-ID", "")))
        if ids:
            return str(ids[0])
    return None


def _returned_id(text: str) -> str | None:
    match = re.search(r"^message-id:\s*(<[^>\s]+>)", text, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else None


def _in_reply_to(message: Message) -> str | None:
    ids = MSGID.findall(str(message.get("In-Reply-To", "")))
    return ids[0] if ids else None


def _addresses(message: Message, names: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for name in names:
        for value in message.get_all(name) or ():
            found.extend(re.findall(r"[\w.+=-]+@[\w.-]+", str(value)))
    return found
