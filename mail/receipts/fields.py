"""RFC 3464 delivery-status fields, read the way real reports are written.

The RFC says one per-message group, then one group per recipient, with blank lines between.
Real reports leave out the blank lines or add more, put a recipient's fields before its
Final-Recipient, fold lines anywhere and base64 the part. So blank lines part the blocks,
and within a block a recipient's group starts at its Final- or Original-Recipient field."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_STARTS_RECIPIENT = {"final-recipient", "original-recipient"}
_PER_RECIPIENT = {
    "action",
    "status",
    "diagnostic-code",
    "remote-mta",
    "last-attempt-date",
    "will-retry-until",
}


@dataclass
class Fields:
    per_message: dict[str, str] = field(default_factory=dict)
    recipients: list[dict[str, str]] = field(default_factory=list)


def read_fields(text: str) -> Fields:
    result = Fields()
    for block in _blocks(_unfolded(text)):
        keys = [name.lower() for name, _ in block]
        if not _STARTS_RECIPIENT & set(keys):
            if result.recipients and set(keys) <= _PER_RECIPIENT and _open(result.recipients, keys):
                _fill(result.recipients[-1], block)  # a stray blank line inside a group
            else:
                _fill(result.per_message, block)
            continue
        first = next(i for i, k in enumerate(keys) if k in _STARTS_RECIPIENT)
        group: dict[str, str] = {}
        result.recipients.append(group)
        _fill(group, block[:first])  # fields written before the recipient's own (Facebook)
        for name, value in block[first:]:
            key = name.lower()
            if key in _STARTS_RECIPIENT and (key in group or _closes(key, group)):
                group = {}
                result.recipients.append(group)
            group.setdefault(key, value)
    result.recipients = [g for g in result.recipients if g]
    return result


def _blocks(fields: list[tuple[str | None, str]]) -> list[list[tuple[str, str]]]:
    blocks: list[list[tuple[str, str]]] = [[]]
    for name, value in fields:
        if name is None:
            blocks.append([])
        else:
            blocks[-1].append((name, value))
    return [b for b in blocks if b]


def _fill(target: dict[str, str], block: list[tuple[str, str]]) -> None:
    for name, value in block:
        target.setdefault(name.lower(), value)


def _open(groups: list[dict[str, str]], keys: list[str]) -> bool:
    return bool(groups) and not set(keys) & set(groups[-1])


def _closes(key: str, group: dict[str, str]) -> bool:
    """Original-Recipient after a whole group (its Final-Recipient and Status) opens the next."""
    return key == "original-recipient" and {"final-recipient", "status"} <= set(group)


def _unfolded(text: str) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for line in _inline_base64(text.replace("\r\n", "\n").replace("\r", "\n")).split("\n"):
        if not line.strip():
            out.append((None, ""))
        elif line[0] in " \t" and out and out[-1][0] is not None:
            name, value = out[-1]
            out[-1] = (name, (value + line).rstrip())  # RFC 5322 unfolding: drop the CRLF only
        elif match := _FIELD.match(line):
            out.append((match.group(1), match.group(2).strip()))
    return out


_ENCODED_GROUP = re.compile(
    r"^content-transfer-encoding:[ \t]*base64[ \t]*\n(?:[\w-]+:.*\n)*\n((?:[A-Za-z0-9+/=]+\n?)+)",
    re.IGNORECASE | re.MULTILINE,
)


def _inline_base64(text: str) -> str:
    """Groups a gateway base64-encoded inside the report, after a Content-Transfer-Encoding
    field of their own: decoded in place."""

    def decoded(match: re.Match[str]) -> str:
        try:
            return "\n" + base64.b64decode(match.group(1)).decode("utf-8", "replace") + "\n"
        except ValueError:
            return match.group(0)

    return _ENCODED_GROUP.sub(decoded, text)


def typed_value(value: str) -> str:
    """`rfc822; a@b` → `a@b`: the value after its type, without angle brackets."""
    _, sep, rest = value.partition(";")
    rest = rest if sep else value
    return rest.strip().strip("<>").strip()
