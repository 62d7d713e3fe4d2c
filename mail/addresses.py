"""Address fields read as their writers meant them, however they were written."""

from __future__ import annotations

import email.utils
import re
from email import policy
from email.message import Message

from mailport.mail.headers import raw_values
from mailport.mail.message import Address
from mailport.mail.words import decode_words, unescape_8bit

_BARE_LIST = re.compile(r"^\s*[^\s<>\",;]+@[^\s<>\",;]+(?:\s+[^\s<>\",;]+@[^\s<>\",;]+)+\s*$")


def read_addresses(
    msg: Message, name: str, defects: list[str], hint: str | None
) -> tuple[Address, ...]:
    """The mailboxes of every field of that name; a tab in a name reads as a space."""
    return tuple(
        Address(a.name.replace("\t", " ").strip(), a.address)
        for a in _read(msg, name, defects, hint)
    )


def _read(msg: Message, name: str, defects: list[str], hint: str | None) -> tuple[Address, ...]:
    raw = [unescape_8bit(v, hint) for v in raw_values(msg, name)]
    if raw and all(_BARE_LIST.match(v) for v in raw):
        # "From: a@example.com b@example.com": bare addresses with the commas left out.
        defects.append(f"{name}: addresses not separated by commas")
        return tuple(Address("", token) for v in raw for token in v.split())
    strict: list[Address] = []
    try:
        for value in raw_values(msg, name):
            for addr in policy.default.header_factory(name, value).addresses:
                if addr.addr_spec and addr.addr_spec != "<>":
                    display = unescape_8bit(addr.display_name or "", hint)
                    spec = unescape_8bit(addr.addr_spec, hint)
                    strict.append(
                        Address(display, spec)
                        if "<" in value
                        else _unbracketed(display, spec, defects)
                    )
        if strict and all(a.usable for a in strict):
            return _names_from_encoded_words(strict, raw, hint)
    except Exception as exc:
        defects.append(f"{name}: the strict parser failed ({type(exc).__name__}); read leniently")
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
