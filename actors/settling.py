"""What a delivery attempt comes to, recipient by recipient: pure rules, no I/O.

2xx: delivered. 4xx, or no answer: try again later (RFC 5321 section 4.2.5), until the
message has been queued for longer than its lifetime. 5xx: never."""

from __future__ import annotations

import random

from mailport.actors.transports import Reply, Result, envelope_id
from mailport.mail.receipts import (
    Receipt,
    RecipientStatus,
    is_hard,
    reason_for,
    status_from_reply,
    status_in,
)
from mailport.store import QueuedMail, RecipientAttempt, Settled


def outcome(reply: Reply) -> str:
    if reply.code is None or 400 <= reply.code < 500:
        return "deferred"
    return "sent" if 200 <= reply.code < 300 else "failed"


def settle(
    mail: QueuedMail,
    result: Result,
    connection: str,
    lifetime: float,
    now: float,
    remote: str = "",
) -> Settled:
    """What came of one attempt; `remote` names the server, for the failure receipt."""
    expired = now - mail.queued_at > lifetime
    attempts = []
    gave_up: set[str] = set()
    for reply in result.replies:
        state, text = outcome(reply), reply.text
        if state == "deferred" and expired:
            state, text = "failed", f"gave up after {mail.attempts} attempts: {text}"
            gave_up.add(reply.recipient)
        attempts.append(RecipientAttempt(reply.recipient, state, reply.code, text))
    deferred = [a for a in attempts if a.outcome == "deferred"]
    failed = [a for a in attempts if a.outcome == "failed"]
    if deferred:
        state = "deferred"
    elif len(failed) < len(attempts):
        state = "sent"
    else:
        state = "failed"
    note = "; ".join(_said(a) for a in (*deferred, *failed)) or None
    return Settled(
        mail_id=mail.id,
        attempt=mail.attempts,
        connection=connection,
        state=state,
        recipients=tuple(attempts),
        note=note,
        retry_at=now + retry_in(mail.attempts, result.connection_failed) if deferred else None,
        pending=tuple(a.recipient for a in deferred),
        receipt=failure_receipt(mail, failed, gave_up, remote, _commands(result))
        if failed
        else None,
        message_id=mail.message_id,
        application=mail.application,
    )


def _commands(result: Result) -> dict[str, str]:
    return {r.recipient: r.command for r in result.replies if r.command}


def failure_receipt(
    mail: QueuedMail,
    failed: list[RecipientAttempt],
    gave_up: set[str],
    remote: str,
    commands: dict[str, str] | None = None,
) -> Receipt:
    """The recipients refused for good, as a receipt for the sending application: the
    same shape as a DSN that came back by mail, so one handler reads both."""
    recipients = []
    for a in failed:
        status = status_in(a.text) or status_from_reply(a.code)
        if a.recipient in gave_up:
            # The last server's status says most; with none, "delivery time expired".
            reason, status = "expired", status or "4.4.7"
        else:
            command = (commands or {}).get(a.recipient)
            said = f"in reply to {command} command" if command else ""
            reason = reason_for(status, a.code, a.text, context=said)
        recipients.append(
            RecipientStatus(
                recipient=a.recipient,
                action="failed",
                status=status,
                reply_code=a.code,
                reason=reason,
                hard_bounce=is_hard(reason, status),
                diagnostic=a.text,
                remote_mta=remote,
            )
        )
    return Receipt(
        kind="dsn",
        original_message_id=mail.message_id,
        envelope_id=envelope_id(mail.id),
        recipients=tuple(recipients),
    )


def retry_in(attempts: int, connection_failed: bool) -> float:
    """Exponential backoff with jitter, so deferred mail does not return in one wave. A
    connection's fault is none of the message's: it is retried soon, by any connection."""
    longest = 30.0 if connection_failed else 3600.0
    return min(longest, 0.5 * 2.0 ** min(attempts, 20)) * random.uniform(0.5, 1.0)


def _said(attempt: RecipientAttempt) -> str:
    code = f"{attempt.code} " if attempt.code is not None else ""
    return f"{attempt.recipient}: {code}{attempt.text}"
