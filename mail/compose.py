"""Build outbound messages as bytes, refusing anything that could inject a header."""

from __future__ import annotations

import email.utils
import mimetypes
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

from mailport.mail import header_writer
from mailport.mail.message import Address


class HeaderInjectionError(ValueError):
    """A header value, address or file name carried a CR or LF."""


@dataclass(frozen=True, slots=True)
class OutgoingAttachment:
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    from_: Address
    to: tuple[Address, ...]
    subject: str
    text: str
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    html: str | None = None
    attachments: tuple[OutgoingAttachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default=())
    reply_to: tuple[Address, ...] = ()
    read_receipt: bool = False
    """Ask the recipient's client for a read receipt (RFC 8098 Disposition-Notification-To,
    naming the From address); it comes back as an MDN to the application's receipt handler."""

    @property
    def envelope_recipients(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.address for a in (*self.to, *self.cc, *self.bcc)))


@dataclass(frozen=True, slots=True)
class Composed:
    message_id: str
    data: bytes
    sender: str
    recipients: tuple[str, ...]
    smtputf8: bool


def compose(message: OutboundMessage, *, message_id: str | None = None) -> Composed:
    """Render the message; the Message-ID is made under the sender's domain unless given."""
    _refuse_newlines(message)
    message = _without_line_separators(message)
    extra = _checked_headers(message.headers)
    _, at, domain = message.from_.address.rpartition("@")
    domain = domain if at and domain else "localhost"
    given = next((v for n, v in extra if n.lower() == "message-id"), None)
    message_id = message_id or given or f"<{uuid.uuid4().hex}@{header_writer.idna(domain)}>"
    # Bodies in 7-bit transfer encodings: no relay is assumed to offer 8BITMIME.
    msg = EmailMessage(policy=_BODY_POLICY)
    top = [
        header_writer.address_field("From", [message.from_]),
        header_writer.address_field("To", list(message.to)),
    ]
    if message.cc:
        top.append(header_writer.address_field("Cc", list(message.cc)))
    if message.reply_to:
        top.append(header_writer.address_field("Reply-To", list(message.reply_to)))
    if message.read_receipt:
        top.append(header_writer.address_field("Disposition-Notification-To", [message.from_]))
    top.append(header_writer.field("Subject", message.subject))
    top.append(f"Date: {email.utils.format_datetime(datetime.now(UTC))}\r\n")
    ids = [("Message-ID", message_id)]
    for name, value in extra:
        if name.lower() == "message-id":
            continue
        if name.lower() in _ID_HEADERS:
            ids.append((name, value))
        elif name.lower() in _ADDRESS_HEADERS:
            found = [Address(n, a) for n, a in email.utils.getaddresses([value]) if a]
            top.append(header_writer.address_field(name, found))
        else:
            top.append(header_writer.field(name, value))
    msg.set_content(message.text, charset="utf-8")
    if message.html is not None:
        msg.add_alternative(message.html, subtype="html", charset="utf-8")
    for attachment in message.attachments:
        ctype = attachment.content_type or (
            mimetypes.guess_type(attachment.filename)[0] or "application/octet-stream"
        )
        maintype, _, subtype = ctype.lower().partition("/")
        if maintype in {"message", "multipart"} or not subtype or not _TOKEN.match(ctype):
            # message/* parts may not be base64 (RFC 2046 section 5.2.1), and re-writing one
            # as a message would change its bytes: it goes as a file, byte for byte.
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # the email package repeats it in every part
    recipients = tuple(header_writer.envelope(a) for a in message.envelope_recipients)
    sender = header_writer.envelope(message.from_.address)
    head = "".join(top)
    smtputf8 = not (head.isascii() and sender.isascii() and all(r.isascii() for r in recipients))
    data = head.encode("utf-8") + _with_ids(msg.as_bytes(), ids)
    return Composed(message_id, data, sender, recipients, smtputf8)


# The email package folds a long id list as unstructured text, into RFC 2047 encoded words
# that no client reads as ids; these are written as they are, folded only between ids.
_ID_HEADERS = {"message-id", "in-reply-to", "references"}
_ADDRESS_HEADERS = {"reply-to", "sender", "disposition-notification-to"}
# Written by compose itself, from the message's fields.
_OWN_HEADERS = {
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
}
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 section 2.2: printable, no colon
_TOKEN = re.compile(r"^[!#-'*+.0-9A-Z^-~-]+/[!#-'*+.0-9A-Z^-~-]+$", re.IGNORECASE)


def _checked_headers(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Extra fields, refusing names that would break the header block or repeat a field
    compose writes; a Message-ID given here replaces the generated one."""
    checked = []
    for name, value in headers:
        if not _FIELD_NAME.match(name):
            raise HeaderInjectionError(f"not a header field name: {name!r}")
        if name.lower() in _OWN_HEADERS:
            raise ValueError(f"{name} is written from the message's own fields; set those")
        checked.append((name, value))
    return checked


_BODY_POLICY = policy.SMTP.clone(cte_type="7bit")


def _with_ids(data: bytes, ids: list[tuple[str, str]]) -> bytes:
    end = data.find(b"\r\n\r\n") + 2
    lines = [f"{name}: " + "\r\n ".join(value.split()) + "\r\n" for name, value in ids]
    return data[:end] + "".join(lines).encode("utf-8") + data[end:]


def _refuse_newlines(message: OutboundMessage) -> None:
    values = [message.subject, *(v for pair in message.headers for v in pair)]
    for addr in (message.from_, *message.to, *message.cc, *message.bcc):
        values += [addr.name, addr.address]
    values += [a.filename for a in message.attachments]
    for value in values:
        if "\r" in value or "\n" in value:
            raise HeaderInjectionError(f"CR or LF in a header value: {value[:60]!r}")


# Characters str.splitlines() breaks on besides CR and LF. They cannot inject a header at
# the SMTP level, but the email package refuses them; in a header they mean a space.
# C0 controls besides tab, and DEL, mean nothing in a header either.
_SEPARATORS = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x85, 0x2028, 0x2029], " "
)


def _without_line_separators(message: OutboundMessage) -> OutboundMessage:
    def clean(addr: Address) -> Address:
        return Address(addr.name.translate(_SEPARATORS).strip(), addr.address)

    return replace(
        message,
        subject=message.subject.translate(_SEPARATORS),
        from_=clean(message.from_),
        to=tuple(map(clean, message.to)),
        cc=tuple(map(clean, message.cc)),
        bcc=tuple(map(clean, message.bcc)),
        headers=tuple((k, v.translate(_SEPARATORS)) for k, v in message.headers),
        attachments=tuple(
            replace(a, filename=a.filename.translate(_SEPARATORS)) for a in message.attachments
        ),
    )
