"""The body: text and HTML decoded by charset, and every other part as an attachment."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from email import policy
from email.message import Message

from mailport.mail import charsets, tnef, transfer
from mailport.mail.headers import raw_values
from mailport.mail.html_text import html_to_text
from mailport.mail.message import Attachment
from mailport.mail.words import decode_words

_TEXT_SUBTYPES = {"plain", "html"}


def body(msg: Message, defects: list[str]) -> tuple[str, str | None, list[Attachment]]:
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    for part in _leaves(msg, defects):
        maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
        disposition = (part.get_content_disposition() or "").lower()
        filename = _filename(part, defects)
        is_body = (
            maintype == "text"
            and subtype in _TEXT_SUBTYPES
            and disposition != "attachment"
            and filename is None
        )
        payload = _payload(part, defects)
        if is_body:
            body, defect = charsets.decode(payload, part.get_content_charset())
            if defect:
                defects.append(defect)
            (texts if subtype == "plain" else htmls).append(body)
        else:
            attachments.append(
                Attachment(
                    filename=filename,
                    content_type=f"{maintype}/{subtype}",
                    size=len(payload),
                    sha256=hashlib.sha256(payload).hexdigest(),
                    inline=disposition == "inline",
                )
            )
            if subtype in {"ms-tnef", "vnd.ms-tnef"} or (filename or "").lower() == "winmail.dat":
                _unpack_tnef(payload, attachments, htmls, defects)
    html = "\n".join(htmls) if htmls else None
    text = "\n".join(texts) if texts else (html_to_text(html) if html else "")
    return text, html, attachments


def _unpack_tnef(
    payload: bytes, attachments: list[Attachment], htmls: list[str], defects: list[str]
) -> None:
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
    if unpacked.html is not None and not htmls:
        htmls.append(unpacked.html)


def _leaves(msg: Message, defects: list[str], depth: int = 0) -> list[Message]:
    """Leaf parts in order; message/rfc822 parts are leaves (attachments), not descended."""
    if depth > 50:
        defects.append("multipart nesting deeper than 50 levels")
        return []
    if not msg.is_multipart() or msg.get_content_maintype() == "message":
        return [msg]
    leaves: list[Message] = []
    payload = msg.get_payload()
    for part in payload if isinstance(payload, list) else []:
        if isinstance(part, Message):
            leaves.extend(_leaves(part, defects, depth + 1))
    return leaves


def _payload(part: Message, defects: list[str]) -> bytes:
    try:
        if part.get_content_maintype() == "message" or part.is_multipart():
            return part.as_bytes(policy=policy.SMTP)
        if part.get("Content-Transfer-Encoding", "").strip().lower() == "base64":
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
