"""The language a text is written in, as an ISO 639 code (two letters where the language
has them, py3langid's three otherwise), or None when it cannot tell."""

from __future__ import annotations

import re

import py3langid

SAMPLE = 2000
_LETTERS = re.compile(r"\w", re.UNICODE)
# Han, kana and hangul carry a word or more a character: a few already tell.
_IDEOGRAPHS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def detect(text: str) -> str | None:
    sample = text[:SAMPLE]
    if len(_LETTERS.findall(sample)) < 12 and len(_IDEOGRAPHS.findall(sample)) < 4:
        return None
    language, _score = py3langid.classify(sample)
    return str(language)
