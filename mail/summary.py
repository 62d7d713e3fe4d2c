"""A parsed message as plain JSON-ready fields: what `mailport parse --json` prints."""

from __future__ import annotations

from typing import Any

from mailport.mail.message import Address, ParsedMessage


def summary(message: ParsedMessage, path: str | None = None) -> dict[str, Any]:
    def addresses(found: tuple[Address, ...]) -> list[dict[str, str]]:
        return [{"name": a.name, "address": a.address} for a in found]

    return {
        "path": path,
        "message_id": message.message_id,
        "date": message.date.isoformat() if message.date else None,
        "from": addresses(message.from_),
        "to": addresses(message.to),
        "cc": addresses(message.cc),
        "reply_to": addresses(message.reply_to),
        "subject": message.subject,
        "in_reply_to": message.in_reply_to,
        "references": list(message.references),
        "language": message.language,
        "text": message.text,
        "html_present": message.html is not None,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "inline": a.inline,
            }
            for a in message.attachments
        ],
        "kind": message.kind,
        "defects": list(message.defects),
        "fatal": message.fatal,
    }
