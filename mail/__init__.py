"""Pure email logic: parse, compose, reply. No network, no Ray, no store."""

from mailport.mail.compose import (
    HeaderInjectionError,
    OutboundMessage,
    OutgoingAttachment,
    compose,
)
from mailport.mail.message import Address, Attachment, ParsedMessage
from mailport.mail.parse import parse
from mailport.mail.reply import reply_recipients, reply_subject, reply_to

__all__ = [
    "Address",
    "Attachment",
    "HeaderInjectionError",
    "OutboundMessage",
    "OutgoingAttachment",
    "ParsedMessage",
    "compose",
    "parse",
    "reply_recipients",
    "reply_subject",
    "reply_to",
]
