"""Header fields written by hand, so that what a reader decodes is exactly what was meant.

The email package's folder can drop the space between two words when it splits non-ASCII
text into encoded words (the space lands between two encoded words, where RFC 2047 says
readers ignore it). Here every space that belongs to the text sits inside an encoded word,
or is kept in place when a line is folded before it."""

from __future__ import annotations

import base64
import re

import idna as idna_codec

from mailport.mail.message import Address

_CHUNK = 39  # UTF-8 bytes an encoded word carries: 52 base64 characters, 64 in all
_LINE = 78
_ATEXT_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*$")


def field(name: str, value: str) -> str:
    """An unstructured field (Subject, say), folded, ending in CRLF."""
    if value.isascii() and "=?" not in value and all(len(w) < 900 for w in value.split(" ")):
        return _fold(f"{name}: {value}")
    return f"{name}: " + "\r\n ".join(encoded_words(value)) + "\r\n"


def address_field(name: str, addresses: list[Address]) -> str:
    """From, To or Cc, folded only between addresses and between encoded words."""
    if not addresses:
        return f"{name}: undisclosed-recipients:;\r\n"
    tokens: list[str] = []
    for i, address in enumerate(addresses):
        comma = "," if i < len(addresses) - 1 else ""
        tokens += [" " + t for t in _mailbox_tokens(address)]
        tokens[-1] += comma
    return _fill(f"{name}:", tokens)


def envelope(address: str) -> str:
    """An address as SMTP carries it: the domain in A-labels."""
    local, at, domain = address.rpartition("@")
    return f"{local}@{idna(domain)}" if at else address


def _mailbox_tokens(address: Address) -> list[str]:
    local, _, domain = address.address.rpartition("@")
    domain = idna(domain)
    spec = f"<{_local_part(local)}@{domain}>" if local else f"<{address.address}>"
    return [*phrase(address.name).split("\r\n "), spec] if address.name else [spec]


def phrase(name: str) -> str:
    """A display name: atoms as they are, else a quoted string, else encoded words (which
    can be folded: a long name is encoded too)."""
    if not name.isascii() or "=?" in name or len(name) > 60:
        return "\r\n ".join(encoded_words(name))
    if _ATEXT_PHRASE.match(name) and name.strip() == name and "  " not in name:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encoded_words(text: str) -> list[str]:
    """Base64 encoded words, each whole characters, spaces included in the words."""
    words, chunk = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _CHUNK:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk or not words:
        words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words]


def _fold(line: str) -> str:
    """Fold before spaces, keeping every space where it was (unfolding just removes CRLF)."""
    first, *pieces = re.split(r"(?= )", line)
    return _fill(first, pieces)


def _fill(first: str, tokens: list[str]) -> str:
    """Lines of at most _LINE characters where the tokens allow, each break before a token
    (which starts with white space); never a line of white space alone."""
    lines, line = [], first
    for token in tokens:
        if len(line) + len(token) > _LINE and line != first and line.strip():
            lines.append(line)
            line = ""
        line += token
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _local_part(local: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*", local):
        return local
    if not local.isascii():
        return local  # SMTPUTF8 (RFC 6532): written as UTF-8
    if len(local) > 1 and local.startswith('"') and local.endswith('"'):
        return local  # quoted already, as parsed
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def idna(domain: str) -> str:
    """A domain in ASCII (IDNA 2008 A-labels, UTS 46 mapping), or as it was when it is no
    valid name (the message then needs SMTPUTF8)."""
    if domain.isascii():
        return domain
    try:
        return idna_codec.encode(domain, uts46=True).decode("ascii")
    except idna_codec.IDNAError:
        return domain
