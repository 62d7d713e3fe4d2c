"""The body: text and HTML decoded by charset, and every other part as an attachment."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from email import policy
from email.message import Message

from mailport.mail import charsets, tnef, transfer
from mailport.mail.headers import raw_values
from mailport.mail.html_text import html_to_text
from mailport.mail.message import Attachment, Charset, Parts
from mailport.mail.spans import Spans
from mailport.mail.structure import MAX_DEPTH, structure
from mailport.mail.words import decode_words


@dataclass(frozen=True, slots=True)
class Body:
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    parts: Parts
    charsets: tuple[Charset, ...]


def body(msg: Message, defects: list[str], spans: Spans) -> Body:
    tree = structure(msg)
    if tree.too_deep:
        defects.append(f"multipart nesting deeper than {MAX_DEPTH} levels")
    for part in tree.messages[1:]:
        defects.extend(type(d).__name__ for d in part.defects)
    decoded: dict[int, str] = {}
    charsets_used: list[Charset] = []

    def text_of(index: int) -> str:
        if index not in decoded:
            part = tree.messages[index]
            spans.resolve(part)
            declared = part.get_content_charset()
            result = charsets.decode(_payload(part, defects, spans), declared)
            if result.defect:
                defects.append(result.defect)
            decoded[index] = result.text.replace("\r\n", "\n")  # LF, whatever the wire used
            charsets_used.append(Charset(index, declared, result.charset))
        return decoded[index]

    def is_html(index: int) -> bool:
        return tree.messages[index].get_content_type() == "text/html"

    htmls = [text_of(i) for i in tree.parts.html_body if is_html(i)]
    texts = [
        html_to_text(text_of(i)) if is_html(i) else text_of(i)
        for i in tree.parts.text_body
        if tree.messages[i].get_content_maintype() == "text"
    ]
    attachments: list[Attachment] = []
    for index in tree.parts.attachments:
        part = tree.messages[index]
        filename = _filename(part, defects)
        subtype = part.get_content_subtype()
        is_tnef = subtype in {"ms-tnef", "vnd.ms-tnef"} or (filename or "").lower() == "winmail.dat"
        if is_tnef:
            spans.resolve(part)
        payload = _payload(part, defects, spans) if is_tnef else None
        digest = _digest(part, payload, defects, spans)
        attachments.append(
            Attachment(
                filename=filename,
                content_type=part.get_content_type(),
                size=digest.size,
                sha256=digest.sha256,
                inline=(part.get_content_disposition() or "").lower() == "inline",
            )
        )
        if payload is not None:
            unpacked = _unpack_tnef(payload, attachments, defects)
            if unpacked.html is not None and not htmls:
                htmls.append(unpacked.html)
                charsets_used.append(Charset(index, None, unpacked.html_charset or "cp1252"))
    html = "\n".join(htmls) if htmls else None
    text = "\n".join(texts) if texts else (html_to_text(html) if html else "")
    return Body(text, html, tuple(attachments), tree.parts, tuple(charsets_used))


def _unpack_tnef(payload: bytes, attachments: list[Attachment], defects: list[str]) -> tnef.Tnef:
    """winmail.dat stays listed, and its files follow it; its HTML body serves when the
    message carries none of its own."""
    unpacked = tnef.unpack(payload)
    defects.extend(unpacked.defects)
    for file in unpacked.files:
        guessed = mimetypes.guess_type(file.name or "")[0]
        attachments.append(
            Attachment(
                filename=file.name,
                content_type=file.mime_type or guessed or "application/octet-stream",
                size=len(file.data),
                sha256=hashlib.sha256(file.data).hexdigest(),
                inline=False,
            )
        )
    return unpacked


def _digest(
    part: Message, payload: bytes | None, defects: list[str], spans: Spans
) -> transfer.Digest:
    """Size and hash; base64 (nearly every large attachment) is hashed as it is decoded."""
    encoded = part.get_payload()
    if payload is None and _is_base64(part) and isinstance(encoded, str):
        digest = transfer.digest_base64(spans.lookup(encoded) or encoded)
        if digest.defect:
            defects.append(digest.defect)
        return digest
    spans.resolve(part)
    data = _payload(part, defects, spans) if payload is None else payload
    return transfer.Digest(len(data), hashlib.sha256(data).hexdigest(), None)


def _is_base64(part: Message) -> bool:
    return (
        not part.is_multipart()
        and part.get_content_maintype() != "message"
        and part.get("Content-Transfer-Encoding", "").strip().lower() == "base64"
    )


def _payload(part: Message, defects: list[str], spans: Spans) -> bytes:
    try:
        if part.get_content_maintype() == "message" or part.is_multipart():
            return spans.restore(part.as_bytes(policy=policy.SMTP))
        if _is_base64(part):
            text = part.get_payload(decode=False)
            encoded = text.encode("ascii", "ignore") if isinstance(text, str) else b""
            decoded, defect = transfer.decode_base64(encoded)
            if defect:
                defects.append(defect)
            return decoded
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    except Exception as exc:
        defects.append(f"payload: {type(exc).__name__}")
        raw = part.get_payload()
        return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""


def _filename(part: Message, defects: list[str]) -> str | None:
    """RFC 2231 names (continuations, charset, percent-encoding) through the stdlib, and
    plain parameters from the raw header: the stdlib strips angle brackets along with the
    quotes ("<>" becomes nothing), cuts an unquoted name at its first space and turns raw
    8-bit bytes into U+FFFD, where mail clients keep the name as written."""
    try:
        name = part.get_filename()
    except Exception as exc:
        defects.append(f"filename: {type(exc).__name__}")
        name = None
    for header, param in (("Content-Disposition", "filename"), ("Content-Type", "name")):
        text = " ".join(raw_values(part, header))
        quoted = _QUOTED_PARAM[param].search(text)
        if quoted:
            written = re.sub(r"\\(.)", r"\1", quoted.group(1))
            if name is None or "\ufffd" in name or name != written:
                name = written
            break
        unquoted = _UNQUOTED_PARAM[param].search(text)
        value = unquoted.group(1).strip() if unquoted else ""
        if value and (name is None or "\ufffd" in name or len(value) > len(name)):
            defects.append(f"unquoted {param} parameter")
            name = value
            break
    return decode_words(name) if name else None


_QUOTED_PARAM = {
    param: re.compile(rf'(?:^|;)\s*{param}\s*=\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
    for param in ("filename", "name")
}
_UNQUOTED_PARAM = {
    param: re.compile(rf"(?:^|;)\s*{param}\s*=\s*([^\s\";][^\";]*)", re.IGNORECASE)
    for param in ("filename", "name")
}
