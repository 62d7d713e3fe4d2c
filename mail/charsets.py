"""Decode bytes to text under a declared, mislabelled or missing charset."""

from __future__ import annotations

import codecs
from typing import NamedTuple

import charset_normalizer

# Labels seen in real mail that Python's codec registry does not know, or knows
# as a narrower charset than the one senders actually use.
_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "uft-8": "utf-8",
    "utf8": "utf-8",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "x-mac-cyrillic": "mac-cyrillic",
    "unicode-1-1-utf-7": "utf-7",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
}


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when the label names nothing usable."""
    if not label:
        return None
    name = label.strip().strip('"').lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


class Decoded(NamedTuple):
    text: str
    defect: str | None
    """Why the label could not be trusted, or None."""
    charset: str
    """The codec the text was decoded with: the declared one, or the one detected."""


def decode(data: bytes, label: str | None) -> Decoded:
    codec = codec_for(label)
    if codec is not None:
        try:
            return Decoded(data.decode(codec), None, codec)
        except UnicodeDecodeError:
            defect = f"charset {label!r} does not match the bytes"
            if codec.startswith("iso2022"):
                # 7-bit escapes carry no clue for detection; a character the codec lacks
                # (NEC's ① and № in ISO-2022-JP) costs one replacement, not the text.
                return Decoded(data.decode(codec, errors="replace"), defect, codec)
    elif label:
        defect = f"unknown charset {label!r}"
    else:
        defect = None
    if not data or data.isascii():
        return Decoded(data.decode("ascii"), defect, "ascii")
    try:
        return Decoded(data.decode("utf-8"), defect, "utf-8")
    except UnicodeDecodeError:
        pass
    best = _detect(data)
    if best is not None:
        return Decoded(str(best), defect or "charset detected", best.encoding)
    replaced = data.decode("utf-8", errors="replace")
    return Decoded(replaced, defect or "undecodable bytes replaced", "utf-8")


def _detect(data: bytes) -> charset_normalizer.CharsetMatch | None:
    """The likeliest charset; of those that read the bytes equally well, windows-1252, by
    far the commonest legacy charset in mail (and what ISO-8859-1 labels mean, WHATWG)."""
    found = list(charset_normalizer.from_bytes(data))
    if not found:
        return None
    best = found[0]
    for match in found:
        if (match.chaos, match.coherence) != (best.chaos, best.coherence):
            break
        if match.encoding == "cp1252":
            return match
    return best
