"""Which parts of a MIME tree are the text body, the HTML body and the attachments.

The rule is RFC 8621 section 4.1.4 (JMAP's textBody, htmlBody and attachments), with two
changes that keep every byte somewhere an application sees it:
- an inline image, audio or video part is also always an attachment, so it arrives as a
  file even where it is shown in the body;
- a multipart whose boundary never appears is an attachment, since its content has no
  other home.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

from mailport.mail.message import Parts

MAX_DEPTH = 50


@dataclass(frozen=True, slots=True)
class Structure:
    messages: tuple[Message, ...]
    """Every part in depth-first order, containers included; a message/rfc822 part is one
    part, whose own tree is not entered."""
    parts: Parts
    too_deep: bool = False


@dataclass(slots=True)
class _Node:
    index: int
    type: str
    inline_disposition: bool
    named: bool
    empty: bool
    children: list[_Node] = field(default_factory=list)

    @property
    def container(self) -> bool:
        return self.type.startswith("multipart/") and bool(self.children)


def structure(msg: Message) -> Structure:
    parts: list[Message] = []
    types: list[str | None] = []
    parents: list[int | None] = []
    too_deep: list[bool] = []
    root = _flatten(msg, parts, types, parents, too_deep, None, 0)
    text: list[int] = []
    html: list[int] = []
    attachments: list[int] = []
    if root.container:
        subtype = root.type.split("/", 1)[1]
        _select(root.children, subtype, subtype == "alternative", text, html, attachments)
    else:
        _select([root], "mixed", False, text, html, attachments)
    return Structure(
        messages=tuple(parts),
        parts=Parts(tuple(types), tuple(parents), tuple(text), tuple(html), tuple(attachments)),
        too_deep=bool(too_deep),
    )


def _flatten(
    part: Message,
    parts: list[Message],
    types: list[str | None],
    parents: list[int | None],
    too_deep: list[bool],
    parent: int | None,
    depth: int,
) -> _Node:
    index = len(parts)
    parts.append(part)
    parents.append(parent)
    types.append(part.get_content_type() if part.get("Content-Type") is not None else None)
    node = _Node(
        index=index,
        type=part.get_content_type(),
        inline_disposition=(part.get_content_disposition() or "inline") != "attachment",
        named=_named(part),
        empty=_nothing(part, headers=False),
    )
    payload = part.get_payload()
    if part.get_content_maintype() == "multipart" and isinstance(payload, list):
        if depth >= MAX_DEPTH:
            too_deep.append(True)
            return node
        children = [c for c in payload if isinstance(c, Message)]
        if children and _nothing(children[-1]):
            children.pop()  # the empty "part" after a delimiter that never got its close
        for child in children:
            node.children.append(_flatten(child, parts, types, parents, too_deep, index, depth + 1))
    return node


def _nothing(part: Message, headers: bool = True) -> bool:
    payload = part.get_payload()
    empty = not payload.strip() if isinstance(payload, str) else not payload
    return empty and not (headers and part.keys())


def _named(part: Message) -> bool:
    try:
        return part.get_param("name") is not None or part.get_filename() is not None
    except Exception:  # a malformed parameter names nothing
        return False


def _media(kind: str) -> bool:
    return kind.split("/", 1)[0] in {"image", "audio", "video"}


def _select(
    parts: list[_Node],
    multipart: str,
    in_alternative: bool,
    text: list[int] | None,
    html: list[int] | None,
    attachments: list[int],
) -> None:
    # text and html are None once this subtree has chosen the other form (a local choice:
    # the caller's lists stay as they were).
    text_before = len(text) if text is not None else -1
    html_before = len(html) if html is not None else -1
    for position, part in enumerate(parts):
        if part.container:
            subtype = part.type.split("/", 1)[1]
            nested = in_alternative or subtype == "alternative"
            _select(part.children, subtype, nested, text, html, attachments)
            continue
        if part.type.startswith("multipart/") and part.empty:
            continue  # a multipart that holds nothing at all
        media = _media(part.type)
        inline = (
            part.inline_disposition
            and (part.type in {"text/plain", "text/html"} or media)
            and (position == 0 or (multipart != "related" and (media or not part.named)))
        )
        if not inline:
            attachments.append(part.index)
            continue
        if media:
            attachments.append(part.index)
        if multipart == "alternative":
            if part.type == "text/plain" and text is not None:
                text.append(part.index)
            elif part.type == "text/html" and html is not None:
                html.append(part.index)
            elif not media:
                attachments.append(part.index)
            continue
        if in_alternative:
            if part.type == "text/plain":
                html = None
            if part.type == "text/html":
                text = None
        if text is not None:
            text.append(part.index)
        if html is not None:
            html.append(part.index)
    if multipart == "alternative" and text is not None and html is not None:
        # An alternative that offered only one form: that form serves as both.
        if text_before == len(text) and html_before != len(html):
            text.extend(html[html_before:])
        if html_before == len(html) and text_before != len(text):
            html.extend(text[text_before:])
