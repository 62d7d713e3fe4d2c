"""A mailing list manager's notice that it would not pass a post on to the list: the post
failed, for the list's address, for the reason the notice gives.

FML marks its mail with X-MLServer and names the list, in angle brackets, in the sentence
that says what it refused ("You are not a member of this mailing list <ml@example.org>.")."""

from __future__ import annotations

import re

from mailport.mail.receipts.dsn import recipient_status
from mailport.mail.receipts.model import Receipt
from mailport.mail.receipts.reading import Report

_FML = re.compile(r"^\s*fml\b", re.IGNORECASE)
_LIST = re.compile(r"<([\w.+=-]+@[\w-]+(?:\.[\w-]+)+)>")
# What its refusals say (its welcome notes, help texts and digests say none of it).
_REFUSED = re.compile(
    r"not (?:a )?member|loop alert|duplicated message-id|reject|denied|not allowed",
    re.IGNORECASE,
)


def from_list_manager(report: Report, original: str | None) -> Receipt | None:
    """The refusal, or None when this is not a list manager's notice of one."""
    if not _FML.match(str(report.message.get("X-MLServer", ""))):
        return None
    words = " ".join(report.notice.split())
    named = _LIST.search(words)
    if named is None or not _REFUSED.search(f"{report.subject} {words[: named.end()]}"):
        return None
    sentence = words[: named.end()].rpartition(". ")[2]
    said = f"{report.subject}: {sentence}"
    status = recipient_status(named.group(1), "failed", "5.0.0", said, "", words)
    return Receipt("dsn", original, None, (status,))
