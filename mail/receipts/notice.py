"""Bounces written for people only: qmail, Exim, Gmail, Exchange, carriers' notices.

Such a notice names each failed recipient on a line of its own, or at the start of a line,
and says what went wrong next to it; the returned message follows a marker line. Read it
that way: the recipients, each with the words nearest to it."""

from __future__ import annotations

import re

_ADDRESS = r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"
_ALONE = re.compile(rf"^\s*[\"']?<?(?:mailto:)?({_ADDRESS})>?[\"']?\s*:?\s*$", re.IGNORECASE)
_LEADING = re.compile(
    rf"^\s*[\"']?<?(?:mailto:)?({_ADDRESS})>?[\"']?(?:\s*\(expanded from[^)]*\))?"
    r"\s*(?:[:;,]|\.\.\.)?\s+(\S.*)$",
    re.IGNORECASE,
)
# "Could not be delivered to: <a@b>", "Delivery to the following recipient failed: a@b".
_INLINE = re.compile(
    rf"(?:deliver\w*(?: \w+){{0,3}} to|recipient|addressee|address|destinataire|empf\u00e4nger)"
    rf"[^<@\n]{{0,40}}?[:\s]\s*<?({_ADDRESS})>?",
    re.IGNORECASE,
)
# Sendmail's "554 <a@b>... Service unavailable" and "<a@b>... User unknown".
_SENDMAIL = re.compile(rf"^\s*(?:[45]\d\d[ -])?<({_ADDRESS})>\.\.\.\s*(.*)$", re.IGNORECASE)
_RCPT = re.compile(rf"RCPT TO:?\s*<?({_ADDRESS})>?", re.IGNORECASE)
_ANY = re.compile(_ADDRESS)
_LABELLED = re.compile(
    rf"^\s*(?:final-recipient|original-recipient|recipient(?: address)?|to|"
    rf"(?:target|failed|invalid) (?:mail )?address(?:es)?|address|e-?mail)\s*[:=]\s*"
    rf"(?:rfc822;\s*)?<?({_ADDRESS})>?",
    re.IGNORECASE,
)
# Where the returned message starts: a marker line, or its headers.
_RETURNED = re.compile(
    r"^\s*(?:[-=_*#]{2,}.*(?:original|copy|returned|undelivered message|message header"
    r"|headers? of|below this line|unsent message|rejected message|message follows|"
    r"forwarded message)"
    r"|.*(?:original message follows|below this line is a copy|unsent message below"
    r"|the original message headers? (?:is|are|follows?)|original message headers?:"
    r"|following is a copy of the|your message (?:reads|was) \(in part\)|message text follows"
    r"|returned message follows|message headers follow|included is a copy of the"
    r"|below is a copy of the original)"
    r"|content-type:\s*message/rfc822)",
    re.IGNORECASE | re.MULTILINE,
)
_MACHINE = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|root|nobody)@", re.IGNORECASE)


def split(text: str) -> tuple[str, str]:
    """The notice, and the returned message that follows it ('' if none)."""
    match = _RETURNED.search(text)
    if match is None or match.start() == 0:
        return text, ""
    return text[: match.start()], text[match.start() :]


def recipients(notice: str, ignore: set[str], named: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Each failed recipient the notice names, with the words about it. `named` are the
    recipients a header such as X-Failed-Recipients gives: then only their words are sought.
    Addresses in `ignore` (the sender's) are passed over unless the notice names no other."""
    named_lines = _named_lines(notice.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    found: dict[str, str] = {}
    for address, words in named_lines:
        if named and address.lower() not in named:
            continue
        key = address.lower()
        found[key] = " ".join(filter(None, [found.get(key, ""), words.strip()]))
    if named:
        return [(address, _squeeze(found.get(address, ""))) for address in named]
    kept = {a: w for a, w in found.items() if a not in ignore}
    if kept or found:
        return [(a, _squeeze(w)) for a, w in (kept or found).items()]
    for match in _RCPT.finditer(notice):
        address = match.group(1).lower()
        if address not in ignore:
            kept.setdefault(address, notice[match.end() : match.end() + 300])
    if not kept:
        for match in _ANY.finditer(notice):
            address = match.group(0).lower()
            if address not in ignore and not _MACHINE.match(address):
                kept[address] = ""
                break
    return [(address, _squeeze(words)) for address, words in kept.items()]


def _named_lines(lines: list[str]) -> list[tuple[str, str]]:
    """Addresses that a line names as its subject, with the words about them."""
    out = []
    for i, line in enumerate(lines):
        if sendmail := _SENDMAIL.match(line):
            address = sendmail.group(1)
            words = " ".join([line.strip(), _near(lines, i + 1, address), _dialogue(lines, i)])
        elif labelled := _LABELLED.match(line):
            if _SUMMARY.match(line) and _in_summary(lines, i):
                continue
            address, words = labelled.group(1), _near(lines, i + 1, labelled.group(1))
        elif alone := _ALONE.match(line):
            address, words = alone.group(1), _near(lines, i + 1, alone.group(1))
        elif leading := _LEADING.match(line):
            address = leading.group(1)
            words = " ".join([leading.group(2), _near(lines, i + 1, address)])
        elif inline := _INLINE.search(line):
            address, rest = inline.group(1), line[inline.end() :].strip(" :;,.>")
            words = " ".join([rest, _near(lines, i + 1, address)])
        else:
            continue
        out.append((address, words))
    return out


# Exchange's "Your message / To: … / Subject: … / Sent: …": the message's own header fields,
# quoted to say which message failed. Its To and Cc are whom it was for, not who failed.
_SUMMARY = re.compile(r"^\s*(?:to|cc)\s*:", re.IGNORECASE)
_SUMMARY_FIELD = re.compile(r"^\s*(?:subject|sent|date|from|to|cc)\s*:", re.IGNORECASE)


# Sendmail's transcript: "While talking to host:", then ">>> command" and "<<< reply", and
# "421 host (smtp)... Deferred: …" for a host it gave up on, all before the summary line
# "554 <a@b>... reason" of the recipient they concern.
_TRANSCRIPT = re.compile(
    r"^\s*(?:>>>|<<<|(?:\.\.\. )?while talking to\b|[45]\d\d \S+ \(\w+\)\.\.\.)", re.IGNORECASE
)


def _dialogue(lines: list[str], i: int) -> str:
    """The transcript lines before the summary line i: the remote server's own reply is among
    them, put last so that its code is the one read."""
    out: list[str] = []
    for line in reversed(lines[max(0, i - 12) : i]):
        if not _TRANSCRIPT.match(line):
            break
        out.insert(0, line.strip())
        if re.match(r"\s*(?:\.\.\. )?while talking to\b", line, re.IGNORECASE):
            break
    return " ".join(out)


def _in_summary(lines: list[str], i: int) -> bool:
    """Whether line i sits among other header fields of the message it quotes."""
    around = [lines[j] for j in (i - 1, i + 1) if 0 <= j < len(lines)]
    return any(_SUMMARY_FIELD.match(line) for line in around)


def _near(lines: list[str], start: int, address: str) -> str:
    """The lines after an address up to a blank line or the next address."""
    out: list[str] = []
    for line in lines[start : start + 12]:
        if not line.strip():
            if out:
                break
            continue
        if _TRANSCRIPT.match(line) or _SENDMAIL.match(line):
            break  # the next recipient's dialogue or summary begins
        other = _ALONE.match(line) or _LABELLED.match(line) or _LEADING.match(line)
        if other and other.group(1).lower() != address.lower():
            break
        out.append(line.strip())
    return " ".join(out)


def _squeeze(text: str) -> str:
    return " ".join(text.split())
