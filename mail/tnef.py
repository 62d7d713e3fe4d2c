"""Outlook's TNEF (winmail.dat, application/ms-tnef) unpacked: its files and its HTML body.

The stream (MS-OXTNEF) is a signature, then attributes: a level, an id, a length, the data
and a checksum. Files come as attAttachRenddata (a new file), attAttachTitle, attAttachData
and attAttachment (MAPI properties, where the long file name lives); the body may sit in
the message's MAPI properties as PR_BODY_HTML in the code page PR_INTERNET_CPID names."""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field

SIGNATURE = 0x223E9F78

ATT_ATTACH_RENDDATA = 0x9002
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_DATA = 0x800F
ATT_ATTACHMENT = 0x9005
ATT_MSG_PROPS = 0x9003

PR_DISPLAY_NAME = 0x3001
PR_ATTACH_DATA = 0x3701
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E
PR_BODY_HTML = 0x1013
PR_INTERNET_CPID = 0x3FDE
ATTACH_EMBEDDED_MSG = 5
MAX_NESTING = 8

_FIXED = {
    0x0002: 2,
    0x0003: 4,
    0x0004: 4,
    0x0005: 8,
    0x0006: 8,
    0x0007: 8,
    0x000A: 4,
    0x000B: 4,
    0x0014: 8,
    0x0040: 8,
    0x0048: 16,
}
_VARIABLE = {0x000D, 0x001E, 0x001F, 0x0102}
MULTI = 0x1000


@dataclass
class TnefFile:
    name: str | None
    data: bytes
    mime_type: str | None = None


@dataclass
class Tnef:
    files: list[TnefFile] = field(default_factory=list)
    html: str | None = None
    html_charset: str | None = None
    defects: list[str] = field(default_factory=list)


def unpack(data: bytes, depth: int = 0) -> Tnef:
    """Never raises: what cannot be read is a defect, and what was read before is kept.

    An attached Outlook message (an embedded TNEF stream) is one file, named by its
    subject, and the files inside it follow it."""
    result = Tnef()
    try:
        _read(data, result, depth)
    except (struct.error, IndexError, ValueError, LookupError) as exc:
        result.defects.append(f"TNEF: truncated or damaged ({exc})")
    return result


def _read(data: bytes, result: Tnef, depth: int) -> None:
    if len(data) < 6 or struct.unpack_from("<I", data)[0] != SIGNATURE:
        raise ValueError("no TNEF signature")
    position = 6  # signature, then a two-byte key
    current: TnefFile | None = None
    nested: list[TnefFile] = []
    while position + 9 <= len(data):
        _level, attribute, length = struct.unpack_from("<BII", data, position)
        value = data[position + 9 : position + 9 + length]
        if len(value) < length:
            raise ValueError("attribute longer than the stream")
        position += 9 + length + 2  # the checksum
        kind = attribute & 0xFFFF
        if kind == ATT_ATTACH_RENDDATA:
            result.files.extend(nested)
            nested = []
            current = TnefFile(None, b"")
            result.files.append(current)
        elif current is not None and kind == ATT_ATTACH_TITLE:
            current.name = current.name or value.rstrip(b"\0").decode("cp1252", "replace")
        elif current is not None and kind == ATT_ATTACH_DATA:
            current.data = value
        elif current is not None and kind == ATT_ATTACHMENT:
            props = _properties(value)
            name = props.get(PR_ATTACH_LONG_FILENAME)
            if isinstance(name, str) and name:
                current.name = name
            tag = props.get(PR_ATTACH_MIME_TAG)
            current.mime_type = tag if isinstance(tag, str) and tag else None
            embedded = props.get(PR_ATTACH_DATA)
            if props.get(PR_ATTACH_METHOD) == ATTACH_EMBEDDED_MSG and isinstance(embedded, bytes):
                subject = props.get(PR_DISPLAY_NAME)
                current.name = subject if isinstance(subject, str) and subject else current.name
                current.data, current.mime_type = embedded, "application/vnd.ms-tnef"
                if depth < MAX_NESTING:
                    inner = unpack(embedded, depth + 1)
                    result.defects.extend(inner.defects)
                    nested.extend(inner.files)
            elif not current.data and isinstance(embedded, bytes):
                current.data = embedded
        elif kind == ATT_MSG_PROPS:
            props = _properties(value)
            html = props.get(PR_BODY_HTML)
            codepage = props.get(PR_INTERNET_CPID)
            if isinstance(html, bytes):
                result.html_charset = _codec(codepage)
                result.html = html.decode(result.html_charset, "replace")
            elif isinstance(html, str):
                result.html, result.html_charset = html, "utf-16-le"
    result.files.extend(nested)


# Windows code page numbers (PR_INTERNET_CPID) whose Python codec is not simply "cpNNN".
_CODE_PAGES = {
    20866: "koi8_r",
    21866: "koi8_u",
    65001: "utf-8",
    28591: "latin-1",
    50220: "iso2022_jp",
    51932: "euc_jp",
    936: "gb18030",
    949: "cp949",
    950: "big5",
}


def _codec(codepage: object) -> str:
    """The Python codec for a Windows code page number; cp1252 when it names none."""
    if not isinstance(codepage, int):
        return "cp1252"
    try:
        return codecs.lookup(_CODE_PAGES.get(codepage, f"cp{codepage}")).name
    except LookupError:
        return "cp1252"


def _properties(data: bytes) -> dict[int, object]:
    """MAPI properties, by property id; named properties are skipped."""
    props: dict[int, object] = {}
    (count,) = struct.unpack_from("<I", data)
    position = 4
    for _ in range(count):
        kind, prop = struct.unpack_from("<HH", data, position)
        position += 4
        if prop >= 0x8000:  # a named property: a GUID, then an id or a name
            (name_kind,) = struct.unpack_from("<I", data, position + 16)
            position += 20
            if name_kind == 0:
                position += 4
            else:
                (size,) = struct.unpack_from("<I", data, position)
                position += 4 + _padded(size)
        values, position = _values(data, position, kind)
        props[prop] = values[0] if values and not kind & MULTI else values
    return props


def _values(data: bytes, position: int, kind: int) -> tuple[list[object], int]:
    base = kind & ~MULTI
    count = 1
    if kind & MULTI or base in _VARIABLE:
        (count,) = struct.unpack_from("<I", data, position)
        position += 4
    values: list[object] = []
    for _ in range(count):
        if position >= len(data):
            raise ValueError("property values run past the attribute")
        if base in _VARIABLE:
            (size,) = struct.unpack_from("<I", data, position)
            raw = data[position + 4 : position + 4 + size]
            position += 4 + _padded(size)
            if base == 0x001E:
                values.append(raw.rstrip(b"\0").decode("cp1252", "replace"))
            elif base == 0x001F:
                values.append(raw.decode("utf-16-le", "replace").rstrip("\0"))
            elif base == 0x000D:
                values.append(raw[16:])  # an object starts with the interface's GUID
            else:
                values.append(raw)
        elif base in _FIXED:
            size = _FIXED[base]
            raw = data[position : position + size]
            position += _padded(size)
            values.append(int.from_bytes(raw[:4], "little") if size <= 4 else raw)
        else:
            raise ValueError(f"unknown MAPI property type {base:#06x}")
    return values, position


def _padded(size: int) -> int:
    return size + (-size % 4)
