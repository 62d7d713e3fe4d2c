"""Providers whose own codes or habits say more than their words: each rule here is a
provider's published convention, read before the general phrase rules."""

from __future__ import annotations

import re

# Orange (orange.fr, wanadoo.fr) ends each refusal with its own error number, "OFR_506" or
# "OFR006_102", which its postmaster pages explain; the number says why, where the words
# around it ("Mail rejected") do not.
_ORANGE_CODE = re.compile(r"\bOFR\d*_(\d{3})\b", re.IGNORECASE)
_ORANGE = {
    "102": "blocked",  # the sending IP is blocked, for spam seen from it
    "416": "userunknown",  # no such recipient
    "505": "systemerror",  # service refused for now: try later
    "506": "spamdetected",  # the message itself was judged to be spam
}

# NTT docomo's servers answer "Unknown user" after DATA when the recipient's reception
# settings refuse the sender (addresses it does not have are refused at RCPT): the sender
# was turned away, not the address.
_DOCOMO = re.compile(r"\bdocomo\.ne\.jp\b", re.IGNORECASE)


def by_provider_code(text: str) -> str | None:
    """The reason a provider's own error number in the server's words gives, if any."""
    match = _ORANGE_CODE.search(text)
    return _ORANGE.get(match.group(1)) if match else None


def refuses_senders_as_unknown_users(remote: str) -> bool:
    """Whether the remote server says "unknown user" of a recipient who refused the sender."""
    return bool(_DOCOMO.search(remote))
