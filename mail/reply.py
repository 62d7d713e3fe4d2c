"""Replies that thread in every client: recipients, subject prefix, In-Reply-To, References."""

from __future__ import annotations

import html as html_lib
import re

from mailport.mail.compose import OutboundMessage
from mailport.mail.message import Address, ParsedMessage

# Reply and forward-of-reply prefixes used by common clients in many languages.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|ref\.?|réf\.?|rif|res|odp|vá|atb|yn|ynt|"
    r"antwort|vastaus|odgovor|yanıt|отв|ответ|απ|σχετ|رد|תשובה|회신|답장|回复|答复|回覆|返信)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)
MAX_REFERENCES = 20


class Unanswerable(ValueError):
    """The message has no address a reply could go to, or must not be answered."""


def reply_subject(subject: str) -> str:
    rest = _PREFIX.sub("", subject).strip()
    return f"Re: {rest}" if rest else "Re:"


def reply_recipients(
    original: ParsedMessage, *, reply_all: bool = False, own: frozenset[str] = frozenset()
) -> tuple[Address, ...]:
    """Reply-To, else From (every mailbox in it: RFC 5322 section 3.6.3); with reply_all also
    To and Cc, leaving out our own addresses."""
    own = frozenset(a.lower() for a in own)
    # A Reply-To naming only us (a loop, or our own list) leaves From to answer.
    reply_to = [a for a in original.reply_to if a.address.lower() not in own]
    chosen = list(reply_to or original.from_)
    if reply_all:
        chosen += [*original.to, *original.cc]
    seen: set[str] = set()
    result = []
    for addr in chosen:
        key = addr.address.lower()
        if addr.usable and key not in seen and key not in own:
            seen.add(key)
            result.append(addr)
    return tuple(result)


def references(original: ParsedMessage) -> tuple[str, ...]:
    """The original's chain plus its own id, keeping the root and the newest when too long."""
    chain = list(original.references)
    if not chain and original.in_reply_to:
        chain = [original.in_reply_to]
    if original.message_id:
        chain.append(original.message_id)
    chain = list(dict.fromkeys(chain))
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return tuple(chain)


def reply_to(
    original: ParsedMessage,
    *,
    from_: Address,
    text: str,
    html: str | None = None,
    reply_all: bool = False,
    own: frozenset[str] = frozenset(),
    automatic: bool = True,
    insist: bool = False,
) -> OutboundMessage:
    """A reply quoting the original; raises Unanswerable when there is nobody to answer.
    An automatic reply says so (Auto-Submitted: auto-replied, RFC 3834). Automatic mail is
    not answered unless the caller insists (a list's owner answering its list, say)."""
    if original.auto_submitted and not insist:
        raise Unanswerable(f"automatic mail is never answered: {original.auto_submitted}")
    own = own | {from_.address.lower()}
    recipients = reply_recipients(original, own=own)
    if not recipients:
        raise Unanswerable("no usable sender address (Reply-To, From)")
    taken = {a.address.lower() for a in recipients}
    others = tuple(
        a
        for a in reply_recipients(original, reply_all=reply_all, own=own)
        if a.address.lower() not in taken
    )
    headers: list[tuple[str, str]] = [("Auto-Submitted", "auto-replied")] if automatic else []
    if original.message_id:
        headers.append(("In-Reply-To", original.message_id))
    chain = references(original)
    if chain:
        headers.append(("References", " ".join(chain)))
    quoted_html = None
    if html is not None or original.html is not None:
        quoted_html = (html or _paragraphs(text)) + _quote_html(original)
    return OutboundMessage(
        from_=from_,
        to=recipients,
        cc=others,
        subject=reply_subject(original.subject),
        text=text + "\n\n" + _quote_text(original),
        html=quoted_html,
        headers=tuple(headers),
    )


def _attribution(original: ParsedMessage) -> str:
    who = str(original.from_[0]) if original.from_ else "the sender"
    when = original.date.strftime("%Y-%m-%d %H:%M %z").strip() if original.date else None
    return f"On {when}, {who} wrote:" if when else f"{who} wrote:"


def _quote_text(original: ParsedMessage) -> str:
    body = "\n".join("> " + line if line else ">" for line in original.text.splitlines())
    return f"{_attribution(original)}\n{body}\n"


def _paragraphs(text: str) -> str:
    """Plain reply text as HTML that shows its line breaks."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return "".join(
        "<p>" + "<br>\n".join(html_lib.escape(line) for line in b.splitlines()) + "</p>"
        for b in blocks
    )


def _quote_html(original: ParsedMessage) -> str:
    inner = (
        original.html
        if original.html is not None
        else ("<pre>" + html_lib.escape(original.text) + "</pre>")
    )
    return (
        f"<p>{html_lib.escape(_attribution(original))}</p>"
        f'<blockquote type="cite">{inner}</blockquote>'
    )
