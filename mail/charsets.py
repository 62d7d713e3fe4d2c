"""Decode bytes to text under a declared, mislabelled or missing charset."""

from __future__ import annotations

import codecs

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


def decode(data: bytes, label: str | None) -> tuple[str, str | None]:
    """Return the text and, when the label could not be trusted, a defect saying why."""
    codec = codec_for(label)
    if codec is not None:
        try:
            return data.decode(codec), None
        except UnicodeDecodeError:
            defect = f"charset {label!r} does not match the bytes"
    elif label:
        defect = f"unknown charset {label!r}"
    else:
        defect = None
    if not data or data.isascii():
        return data.decode("ascii"), defect
    try:
        return data.decode("utf-8"), defect
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is not None:
        return str(best), defect or "charset detected"
    return data.decode("utf-8", errors="replace"), defect or "undecodable bytes replaced"
