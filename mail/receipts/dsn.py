"""RFC 3464 reports: each recipient's fields, read with the server's own words."""

from __future__ import annotations

import dataclasses
import re

from mailport.mail.receipts import notice as notices
from mailport.mail.receipts.codes import reply_code_in, status_from_reply, status_in, statuses_in
from mailport.mail.receipts.fields import read_fields, typed_value
from mailport.mail.receipts.model import Receipt, RecipientStatus
from mailport.mail.receipts.reading import Report
from mailport.mail.receipts.reasons import is_hard, reason_for

_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
_CLASS_OF = {"delay": "4.0.0", "deliv": "2.0.0", "relay": "2.0.0", "expan": "2.0.0"}
# What a server says of one recipient fits in a few reply lines (RFC 5321 allows 512 octets
# a line); the rest of a longer text is not the server's, and reading it costs time.
DIAGNOSTIC_CHARS = 4000
CONTEXT_CHARS = 8000


def from_report(report: Report, text: str, original: str | None) -> Receipt:
    """The receipt a delivery-status text gives; the notice fills in what it leaves out."""
    fields = read_fields(text)
    envelope = fields.per_message.get("original-envelope-id") or None
    notice, _ = notices.split(report.notice)
    out: list[RecipientStatus] = []
    for group in fields.recipients:
        recipient = typed_value(group.get("final-recipient") or group.get("original-recipient", ""))
        diagnostic = typed_value(group["diagnostic-code"]) if "diagnostic-code" in group else ""
        words = _words_about(recipient, notice)
        if len(fields.recipients) == 1:  # then the whole notice is about this recipient
            words = " ".join(filter(None, [words, " ".join(notice.split())]))
        action = group.get("action", "").split()[0].lower() if group.get("action") else ""
        remote = typed_value(group.get("remote-mta", ""))
        given = group.get("status", "")
        status = recipient_status(recipient, action, given, diagnostic or words, remote, words)
        local = _by_local_program(group.get("diagnostic-code", ""), status.reason)
        if local is not None:
            status = dataclasses.replace(status, reason=local, hard_bounce=False)
        out.append(status)
    return Receipt("dsn", original, envelope, tuple(out))


def recipient_status(
    recipient: str, action: str, given: str, diagnostic: str, remote: str, context: str = ""
) -> RecipientStatus:
    """One recipient's status from what was said of it: `given` is the Status field,
    `context` the rest of what the report says about the recipient."""
    diagnostic, context = _cut(diagnostic, DIAGNOSTIC_CHARS), _cut(context, CONTEXT_CHARS)
    status = status_in(given)
    said = statuses_in(diagnostic)
    # The server's own code says more than the reporting MTA's Status field (a generic
    # 5.0.0, or 4.4.7 for "gave up"); where codes nest, the last is the remote server's.
    if said and (not status or said[-1][0] == status[0]):
        status = said[-1]
    if status[1:] in (".0.0", ".4.7") or not status:
        # Still only a class, or only "time ran out": the rest of the report may say why.
        told = [c for c in statuses_in(context) if c[0] == (status or c)[0] and c != status]
        status = told[-1] if told else status
    code = reply_code_in(diagnostic) or reply_code_in(context)
    if code is not None and status and str(code)[0] != status[0]:
        code = None  # a 5xx reply beside a 4.x.x status: the two disagree, trust neither
    if not status:  # the class alone: from the reply, else from the action
        status = status_from_reply(code) or _CLASS_OF.get(action[:5], "5.0.0")
    action = _action(action, status)
    # The reporting MTA's words beside its Status code go with that code: not where the
    # server's own code took its place.
    reading = _comment(given) if status == status_in(given) else ""
    reason = reason_for(status, code, diagnostic, action, context, reading, remote)
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


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _comment(field: str) -> str:
    match = re.search(r"\(([^()]*)\)", field)
    return match.group(1).strip() if match else ""


def _action(said: str, status: str) -> str:
    """RFC 3464's action, from what reports write (Action: deliverable, Action: failure)."""
    for action in _ACTIONS:
        if said.startswith(action[:5]):
            return action
    return {"2": "delivered", "4": "delayed"}.get(status[:1], "failed")


# Exit statuses of sysexits.h that blame the system the program ran on (an OS error, a
# missing system file, a file it cannot create, an I/O error, no permission, a bad
# configuration) rather than the program.
_SYSTEM_EXITS = {71, 72, 73, 74, 77, 78}


def _by_local_program(diagnostic_code: str, reason: str) -> str | None:
    """An X-Unix diagnostic is a local delivery program's exit: the mailer failed, whatever
    its words say, unless the system itself is short of something, or the program's exit
    status says the system failed it. None when it is not such a diagnostic."""
    kind, _, said = diagnostic_code.partition(";")
    if kind.strip().lower() != "x-unix" or reason in ("systemerror", "systemfull", "mailboxfull"):
        return None
    exit_status = said.strip()
    if exit_status.isdigit() and int(exit_status) in _SYSTEM_EXITS:
        return "systemerror"
    return "mailererror"


def _words_about(recipient: str, notice: str) -> str:
    if not recipient:
        return ""
    for address, words in notices.recipients(notice, set()):
        if address.lower() == recipient.lower():
            return words
    return ""
