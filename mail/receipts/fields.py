"""RFC 3464 delivery-status fields, read the way real reports are written.

The RFC says one per-message group, then one group per recipient, with blank lines between.
Real reports leave out the blank lines or add more, fold lines anywhere and base64 the part;
so a recipient's group starts at its Final- or Original-Recipient field, not at a blank."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_STARTS_RECIPIENT = {"final-recipient", "original-recipient"}
_PER_RECIPIENT = {"action", "status", "diagnostic-code", "remote-mta", "last-attempt-date"}


@dataclass
class Fields:
    per_message: dict[str, str] = field(default_factory=dict)
    recipients: list[dict[str, str]] = field(default_factory=list)


def read_fields(text: str) -> Fields:
    result = Fields()
    group: dict[str, str] | None = None
    for name, value in _unfolded(text):
        if name is None:  # a blank line closes a recipient's group
            group = None
            continue
        key = name.lower()
        if key in _STARTS_RECIPIENT and (group is None or key in group or _closes(key, group)):
            group = {}
            result.recipients.append(group)
        elif group is None and key in _PER_RECIPIENT and _open(result.recipients, key):
            group = result.recipients[-1]  # a stray blank line inside a group
        target = result.per_message if group is None else group
        target.setdefault(key, value)
    result.recipients = [g for g in result.recipients if g]
    return result


def _open(groups: list[dict[str, str]], key: str) -> bool:
    return bool(groups) and key not in groups[-1]


def _closes(key: str, group: dict[str, str]) -> bool:
    """Original-Recipient after a group's Final-Recipient and Action opens the next group."""
    return key == "original-recipient" and "action" in group


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
