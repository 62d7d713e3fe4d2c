"""The policy the parser reads with: compat32, with header values unfolded as they arrive.

compat32 keeps the line breaks of a folded value, so a boundary folded inside its quotes
("foo<CRLF> bar") never matches its delimiter lines, and a Content-Type that lost the ";"
before its folded parameters reads as one long media type. Unfolding (RFC 5322 section
2.2.3) is removing the line break and keeping the whitespace after it.
"""

from __future__ import annotations

import re
from email.policy import Compat32

_LINE_BREAK = re.compile(r"\r?\n(?=[ \t])|\r?\n$")
_TOKEN = r"[!#-'*+.0-9A-Z^-~-]+"
_TYPE_WITHOUT_SEMICOLON = re.compile(rf"^\s*({_TOKEN}/{_TOKEN})\s+(?=[\w-]+\s*=)")


class Unfolding(Compat32):
    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        value = _LINE_BREAK.sub("", value)
        if name.lower() == "content-type":
            value = _TYPE_WITHOUT_SEMICOLON.sub(r"\1; ", value)
        return name, value


READING = Unfolding()
