"""What a delivery attempt comes to, recipient by recipient: pure rules, no I/O.

2xx: delivered. 4xx, or no answer: try again later (RFC 5321 section 4.2.5), until the
message has been queued for longer than its lifetime. 5xx: never."""

from __future__ import annotations

import random

from mailport.actors.transports import Reply, Result
from mailport.store import QueuedMail, RecipientAttempt, Settled


def outcome(reply: Reply) -> str:
    if reply.code is None or 400 <= reply.code < 500:
        return "deferred"
    return "sent" if 200 <= reply.code < 300 else "failed"


def settle(
    mail: QueuedMail, result: Result, connection: str, lifetime: float, now: float
) -> Settled:
    expired = now - mail.queued_at > lifetime
    attempts = []
    for reply in result.replies:
        state, text = outcome(reply), reply.text
        if state == "deferred" and expired:
            state, text = "failed", f"gave up after {mail.attempts} attempts: {text}"
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
    )


def retry_in(attempts: int, connection_failed: bool) -> float:
    """Exponential backoff with jitter, so deferred mail does not return in one wave. A
    connection's fault is none of the message's: it is retried soon, by any connection."""
    longest = 30.0 if connection_failed else 3600.0
    return min(longest, 0.5 * 2.0 ** min(attempts, 20)) * random.uniform(0.5, 1.0)


def _said(attempt: RecipientAttempt) -> str:
    code = f"{attempt.code} " if attempt.code is not None else ""
    return f"{attempt.recipient}: {code}{attempt.text}"
