"""The language a text is written in, as an ISO 639-1 code, or None when it cannot tell."""

from __future__ import annotations

import re

import py3langid

SAMPLE = 2000
_LETTERS = re.compile(r"\w", re.UNICODE)


def detect(text: str) -> str | None:
    sample = text[:SAMPLE]
    if len(_LETTERS.findall(sample)) < 12:  # too little to judge
        return None
    language, _score = py3langid.classify(sample)
    return str(language)
