"""Routing rules as matchers: the first rule naming one of the message's recipients wins."""

from __future__ import annotations

from mailport.config.models import Routing
from mailport.mail.message import ParsedMessage


def route(routing: Routing, message: ParsedMessage, envelope: tuple[str, ...] = ()) -> str:
    recipients = {a.address.lower() for a in (*message.to, *message.cc)}
    recipients.update(r.lower() for r in envelope)
    for rule in routing.rules:
        if rule.recipient.lower() in recipients:
            return rule.application
    return routing.default
