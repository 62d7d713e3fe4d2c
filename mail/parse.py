"""Read raw message bytes into a ParsedMessage. Never raises: defects are data."""

from __future__ import annotations

import email
import email.header
import email.utils
import hashlib
import mimetypes
import re
from collections.abc import Callable
from datetime import datetime
from email import policy
from email.message import Message
from html.parser import HTMLParser

from mailport.mail import charsets, language, tnef, transfer
from mailport.mail.message import Address, Attachment, ParsedMessage
from mailport.mail.words import decode_words, unescape_8bit

_MSGID = re.compile(r"<[^<>\s]+>")
# RFC 5322 section 4.5.4: the obsolete syntax allows comments and folding inside an id.
_OBS_MSGID = re.compile(r"<[^<>]+@[^<>]+>")
_CFWS = re.compile(r"\([^()]*\)|\s+")
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"[\r\n]")
_TEXT_SUBTYPES = {"plain", "html"}
# Fields that receiving servers add (RFC 5321 section 4.4): alone they do not make an email.
_TRACE = {"return-path", "received", "delivered-to", "x-original-to"}


_OBS_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BOM_AT_LINE_START = re.compile(rb"(^|\n)\xef\xbb\xbf")


def parse(raw: bytes) -> ParsedMessage:
    defects: list[str] = []
    raw = _normalise_header_block(raw, defects)
    try:
        # compat32 for the structure: the modern policy re-parses Content-Type through the
        # header registry on every access, which cost two thirds of the parse time.
        msg = email.message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # the stdlib parser is meant not to raise; be sure of it
        return _unreadable(f"parser failed: {type(exc).__name__}: {exc}")
    if not raw.strip() or not [k for k in msg if k.lower() not in _TRACE]:
        return _unreadable("no header fields: not an RFC 5322 message")
    defects.extend(type(d).__name__ for d in msg.defects)
    hint = _declared_charset(msg)

    def header(name: str) -> str:
        return _header(msg, name, hint)

    def addresses(name: str) -> tuple[Address, ...]:
        return _addresses(msg, name, defects, hint)

    def ids(name: str) -> str:
        # Message ids are taken verbatim: a reply must echo them byte for byte, and the
        # header registry rewrites the unusual ones (two @ signs, say).
        return " ".join(unescape_8bit(v, hint) for v in _raw_values(msg, name))

    text, html, attachments = _body(msg, defects)
    from_, sender = addresses("From"), addresses("Sender")
    automatic = _automatic(msg, header, (*from_, *sender))
    return ParsedMessage(
        message_id=_first_msgid(ids("Message-ID")),
        subject=header("Subject"),
        from_=from_,
        to=addresses("To"),
        cc=addresses("Cc"),
        reply_to=addresses("Reply-To"),
        sender=sender,
        date=_date(msg, defects),
        in_reply_to=_first_msgid(ids("In-Reply-To")),
        references=tuple(_MSGID.findall(ids("References"))),
        text=text,
        html=html,
        attachments=tuple(attachments),
        auto_submitted=automatic,
        kind=_kind(msg, header, automatic),
        language=language.detect(text),
        defects=tuple(dict.fromkeys(defects)),
    )


def _normalise_header_block(raw: bytes, defects: list[str]) -> bytes:
    """Undo two things the stdlib parser cannot read: a leading BOM, and the obsolete
    RFC 5322 section 4.5 syntax of whitespace between a field name and its colon."""
    end = _HEADER_END.search(raw)
    head, tail = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    # A receiving server may have put trace fields before the BOM, so look at every line.
    head, boms = _BOM_AT_LINE_START.subn(rb"\1", head)
    if boms:
        defects.append("byte order mark before the header")
    head, obsolete = _OBS_FIELD_NAME.subn(rb"\1:", head)
    if obsolete:
        defects.append("whitespace between a field name and its colon")
    return head + tail if boms or obsolete else raw


def _declared_charset(msg: Message) -> str | None:
    """The first charset the message declares for its text: raw 8-bit header bytes that are
    not UTF-8 are, in practice, in the same charset as the body."""
    try:
        for part in msg.walk():
            if part.get_content_maintype() == "text" and part.get_content_charset():
                return part.get_content_charset()
    except RecursionError:  # absurdly deep nesting; the body reader reports it
        pass
    return None


def _unreadable(reason: str) -> ParsedMessage:
    return ParsedMessage(
        message_id=None,
        subject="",
        from_=(),
        to=(),
        cc=(),
        reply_to=(),
        sender=(),
        date=None,
        in_reply_to=None,
        references=(),
        text="",
        html=None,
        attachments=(),
        auto_submitted=None,
        defects=(reason,),
        fatal=reason,
    )


def _header(msg: Message, name: str, hint: str | None) -> str:
    """The first field of that name, decoded and unfolded (a repeated Subject is a defect,
    and the first is what clients show)."""
    values = _raw_values(msg, name)
    return " ".join(decode_words(values[0], hint).split()) if values else ""


def _raw_values(msg: Message, name: str) -> list[str]:
    """Header values as received and unfolded (RFC 5322 section 2.2.3), without the
    registry's parsing, which can raise."""
    wanted = name.lower()
    return [
        _LINE_BREAK.sub("", _UNFOLD.sub("", str(v)))
        for k, v in msg.raw_items()
        if k.lower() == wanted
    ]


_BARE_LIST = re.compile(r"^\s*[^\s<>\",;]+@[^\s<>\",;]+(?:\s+[^\s<>\",;]+@[^\s<>\",;]+)+\s*$")


def _addresses(
    msg: Message, name: str, defects: list[str], hint: str | None
) -> tuple[Address, ...]:
    raw = [unescape_8bit(v, hint) for v in _raw_values(msg, name)]
    if raw and all(_BARE_LIST.match(v) for v in raw):
        # "From: a@example.com b@example.com": bare addresses with the commas left out.
        defects.append(f"{name}: addresses not separated by commas")
        return tuple(Address("", token) for v in raw for token in v.split())
    strict: list[Address] = []
    try:
        for value in _raw_values(msg, name):
            for addr in policy.default.header_factory(name, value).addresses:
                if addr.addr_spec and addr.addr_spec != "<>":
                    strict.append(
                        _unbracketed(
                            unescape_8bit(addr.display_name or "", hint),
                            unescape_8bit(addr.addr_spec, hint),
                            defects,
                        )
                    )
        if strict and all(a.usable for a in strict):
            return _names_from_encoded_words(strict, raw, hint)
    except Exception as exc:
        defects.append(f"{name}: {type(exc).__name__}")
    # The lenient reading copes with what the strict one cannot, such as an unquoted "@"
    # in a display name; keep whichever reading found more usable mailboxes.
    try:
        pairs = email.utils.getaddresses([decode_words(v, hint) for v in raw])
    except RecursionError:  # the legacy parser recurses once per group or route
        defects.append(f"{name}: too deeply nested to read")
        pairs = []
    lenient = [_unbracketed(display, spec, defects) for display, spec in pairs if "@" in spec]
    if sum(a.usable for a in lenient) > sum(a.usable for a in strict):
        return tuple(lenient)
    return tuple(strict or lenient)


def _names_from_encoded_words(
    found: list[Address], raw: list[str], hint: str | None
) -> tuple[Address, ...]:
    """Display names decoded by mail.words, which reads encoded words as RFC 2047 means
    them, where the header registry does not (see that module)."""
    if not any("=?" in v for v in raw):
        return tuple(found)
    try:
        names = {
            spec.lower(): decode_words(display, hint)
            for display, spec in email.utils.getaddresses(raw)
            if display
        }
    except RecursionError:
        return tuple(found)
    return tuple(Address(names.get(a.address.lower(), a.name), a.address) for a in found)


def _unbracketed(name: str, spec: str, defects: list[str]) -> Address:
    """`From: Big Bug bb@bug.com` has no angle brackets; the obsolete syntax reads it as the
    local part "Big Bug bb", but its writer meant the name Big Bug and the address
    bb@bug.com, and so do mail clients."""
    local, at, domain = spec.rpartition("@")
    words = local.strip('"').split()
    if at and len(words) > 1:
        defects.append("address without angle brackets")
        return Address(" ".join([name, *words[:-1]]).strip(), f"{words[-1]}@{domain}")
    return Address(name, spec)


def _first_msgid(value: str) -> str | None:
    match = _MSGID.search(value) or _OBS_MSGID.search(value)
    return _CFWS.sub("", match.group(0)) if match else None


def _date(msg: Message, defects: list[str]) -> datetime | None:
    values = _raw_values(msg, "Date")
    if not values:
        return None
    try:
        return email.utils.parsedate_to_datetime(values[0])
    except Exception as exc:
        defects.append(f"Date: {type(exc).__name__}")
        return None


# Mailboxes that are machines: nobody reads an answer sent to them.
_MACHINES = re.compile(
    r"^(mailer[-_]?daemon|mail-daemon|post[-_]?master|no[-_]?reply|do[-_]?not[-_]?reply"
    r"|bounces?)([-+.].*)?$",
    re.IGNORECASE,
)
# Subjects that helpdesks treat as automatic when no header says so: out-of-office notes
# and non-delivery reports in the languages of the clients that send them.
_AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|automatische antwort"
    r"|réponse automatique|respuesta automática|risposta automatica|autosvar"
    r"|automatisch antwoord|undeliverable|undelivered mail|delivery status notification"
    r"|mail delivery (failed|failure|system)|returned mail|failure notice"
    r"|delivery failure|non[- ]?delivery)\b",
    re.IGNORECASE,
)
_SUPPRESS = {"all", "dr", "ndr", "rn", "nrn", "oof", "autoreply"}


def _automatic(
    msg: Message, header: Callable[[str], str], senders: tuple[Address, ...]
) -> str | None:
    """Why this message must never be answered automatically (RFC 3834), or None.

    Auto-replies, delivery and read reports and list traffic are answered by nobody: a
    reply to them is how mail loops start."""
    value = header("Auto-Submitted").lower()
    if value and not value.startswith("no"):
        return f"Auto-Submitted: {value}"
    if msg.get_content_type() == "multipart/report":
        return f"a {msg.get_param('report-type') or 'delivery'} report"
    if header("Return-Path").replace(" ", "") in ("<>", "<<>>"):
        return "null sender (Return-Path: <>)"
    for sender in senders:
        if _MACHINES.match(sender.address.rpartition("@")[0]):
            return f"sent by a machine ({sender.address})"
    precedence = header("Precedence").lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"Precedence: {precedence}"
    suppress = {v.strip().lower() for v in header("X-Auto-Response-Suppress").split(",")}
    if suppress & _SUPPRESS:
        return f"X-Auto-Response-Suppress: {header('X-Auto-Response-Suppress')}"
    for name in (
        "X-Autoreply",
        "X-Autorespond",
        "List-Id",
        "List-Unsubscribe",
        "List-Post",
        "X-MLServer",
    ):
        if header(name):
            return f"{name} present"
    if _AUTOMATIC_SUBJECT.match(header("Subject")):
        return f"automatic subject: {header('Subject')[:60]}"
    return None


_REPORTS = {
    "delivery-status": "dsn",
    "global-delivery-status": "dsn",
    "disposition-notification": "mdn",
    "global-disposition-notification": "mdn",
    "feedback-report": "feedback",
}
_OUT_OF_OFFICE = re.compile(
    r"auto(matic)?[ -]?(reply|response)|out of (the )?office|automatische antwort"
    r"|réponse automatique|respuesta automática|risposta automatica|autosvar"
    r"|automatisch antwoord",
    re.IGNORECASE,
)


_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status|failure|failed|notification|problem)|returned mail"
    r"|failure notice|non[- ]?delivery|mail delivery|could not (be )?deliver|mail system error"
    r"|メールエラー|配信",
    re.IGNORECASE,
)
_MAIL_SYSTEM = re.compile(r"mailer[-_]?daemon|post[-_]?master|mail[-_]?delivery", re.IGNORECASE)


def _kind(msg: Message, header: Callable[[str], str], automatic: str | None) -> str:
    """A first cut of what the message is: a report by its MIME type (RFC 3462); else, for
    automatic mail, a bounce by its sender or subject, or an auto-reply by its markers.
    Other automatic mail (lists, bulk, no-reply senders) is normal mail nobody answers."""
    try:
        types = {part.get_content_type() for part in msg.walk()}
    except RecursionError:
        types = {msg.get_content_type()}
    report = str(msg.get_param("report-type") or "").lower()
    for name, kind in _REPORTS.items():
        if report == name or f"message/{name}" in types:
            return kind
    if automatic is None:
        return "normal"
    subject = header("Subject")
    if _BOUNCE_SUBJECT.search(subject) or _MAIL_SYSTEM.search(header("From")):
        return "dsn"
    if (
        "auto-replied" in automatic
        or "autoreply" in automatic.lower()
        or (_OUT_OF_OFFICE.search(subject))
    ):
        return "autoreply"
    return "dsn" if automatic.startswith(("a ", "null sender")) else "normal"


def _body(msg: Message, defects: list[str]) -> tuple[str, str | None, list[Attachment]]:
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
    """RFC 2231 names (continuations, charset, percent-encoding) through the stdlib; the
    common malformed forms (an unquoted name with spaces, an unquoted encoded word) from
    the raw header, as mail clients read them."""
    try:
        name = part.get_filename()
    except Exception as exc:
        defects.append(f"filename: {type(exc).__name__}")
        name = None
    for header, param in (("Content-Disposition", "filename"), ("Content-Type", "name")):
        match = _UNQUOTED_PARAM[param].search(" ".join(str(v) for v in _raw_values(part, header)))
        value = match.group(1).strip() if match else ""
        # The stdlib cuts an unquoted name at its first space and turns raw 8-bit bytes in
        # it into U+FFFD; the raw text has neither loss.
        if value and (name is None or "\ufffd" in name or len(value) > len(name)):
            defects.append(f"unquoted {param} parameter")
            name = value
            break
    return decode_words(name) if name else None


_UNQUOTED_PARAM = {
    param: re.compile(rf"(?:^|;)\s*{param}\s*=\s*([^\s\";][^\";]*)", re.IGNORECASE)
    for param in ("filename", "name")
}


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})
    _BREAK = frozenset(
        {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)
    lines = (" ".join(line.split()) for line in "".join(extractor.chunks).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
