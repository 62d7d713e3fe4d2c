"""Parse every message the corpus's sources assert something about, and compare."""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mailport.mail import ParsedMessage, parse
from tests.corpus import ROOT, expectations

KNOWN = Path(__file__).with_name("parse_known_differences.yaml")


def _field(m: ParsedMessage, name: str) -> str | None:
    return next((value for key, value in m.headers if key.lower() == name), None)


def _children(m: ParsedMessage, parent: int) -> list[int]:
    return [i for i, p in enumerate(m.parts.parents) if p == parent]


def _type(m: ParsedMessage, index: int) -> str:
    return m.parts.types[index] or "text/plain"


def _declared(m: ParsedMessage) -> str | None:
    return m.charsets[0].declared if m.charsets else None


# The expectation fields compared, each with how to read the same value from mailport
# (given the expectation, for the fields that test membership or count a substring).
FIELDS: dict[str, Callable[[ParsedMessage, Any], Any]] = {
    "parses_without_error": lambda m, _: m.fatal is None,
    "parse_error": lambda m, _: bool(m.defects),
    "subject": lambda m, _: m.subject,
    "from_addresses": lambda m, _: [a.address for a in m.from_],
    "from_": lambda m, _: [a.address for a in m.from_],
    "from_addr": lambda m, _: m.from_[0].address if m.from_ else None,
    "from_display": lambda m, _: [a.name for a in m.from_],
    "from_display_names": lambda m, _: [a.name for a in m.from_],
    "to_addresses": lambda m, _: [a.address for a in m.to],
    "to": lambda m, _: [a.address for a in m.to],
    "to_addr": lambda m, _: m.to[0].address if m.to else None,
    "from_header": lambda m, _: _field(m, "from"),
    "from_header_decoded": lambda m, _: _field(m, "from"),
    "to_header": lambda m, _: _field(m, "to"),
    "to_header_decoded": lambda m, _: _field(m, "to"),
    "x_mailer": lambda m, _: _field(m, "x-mailer"),
    "header_count": lambda m, _: len(m.headers),
    "received_count": lambda m, _: sum(k.lower() == "received" for k, _ in m.headers),
    "references": lambda m, _: " ".join(r.strip("<>") for r in m.references),
    "attachments": lambda m, _: len(m.attachments),
    "attachment_filenames": lambda m, _: [a.filename for a in m.attachments if a.filename],
    "attachment_filename": lambda m, want: want in [a.filename for a in m.attachments],
    "attachment_filename_startswith": lambda m, want: any(
        (a.filename or "").startswith(want) for a in m.attachments
    ),
    "attachment_sizes": lambda m, _: [a.size for a in m.attachments],
    "attachment_decoded_sizes": lambda m, _: [a.size for a in m.attachments],
    "attachment_names": lambda m, _: [a.filename for a in m.attachments],
    "attachment_content_types": lambda m, _: [a.content_type for a in m.attachments],
    "attachment_content_type": lambda m, want: want in [a.content_type for a in m.attachments],
    "attachment_dispositions": lambda m, _: [
        "inline" if a.inline else "attachment" for a in m.attachments
    ],
    "embedded_count": lambda m, _: sum(a.inline for a in m.attachments),
    "is_attachment": lambda m, _: 0 in m.parts.attachments,
    "tnef_attachment_filenames": lambda m, _: [
        a.filename for a in m.attachments if a.content_type != "application/ms-tnef"
    ],
    "tnef_body": lambda m, _: {
        "is_html": m.html is not None,
        "charset": next(
            (c.used for c in m.charsets if _type(m, c.part) == "application/ms-tnef"), None
        ),
    },
    "text_body_exact": lambda m, _: m.text,
    "decoded_body": lambda m, _: m.text,
    "decoded_payloads": lambda m, _: m.text,
    "decoded_body_stripped": lambda m, _: m.text.strip(),
    "text_stripped": lambda m, _: m.text.strip(),
    "html_body_exact": lambda m, _: m.html or "",
    "html_contains": lambda m, want: want in (m.html or ""),
    "html_must_not_contain": lambda m, want: want not in (m.html or ""),
    "text_body_count": lambda m, want: {
        "substring": want["substring"],
        "count": m.text.count(want["substring"]),
    },
    "html_body_count": lambda m, want: {
        "substring": want["substring"],
        "count": (m.html or "").count(want["substring"]),
    },
    "charset": lambda m, _: _declared(m),
    "declared_charset": lambda m, _: _declared(m),
    "detected_charset": lambda m, _: m.charsets[0].used if m.charsets else None,
    "mime_type": lambda m, _: _type(m, 0),
    "content_type": lambda m, _: _type(m, 0),
    "multipart": lambda m, _: _type(m, 0).startswith("multipart/"),
    "parts": lambda m, _: len(_children(m, 0)),
    "part_types": lambda m, _: [_type(m, i) for i in _children(m, 0)],
    "first_part_type": lambda m, _: _type(m, _children(m, 0)[0]) if _children(m, 0) else None,
    "first_part_parts": lambda m, _: len(_children(m, 1)),
    "has_part_type": lambda m, want: any(_type(m, i) == want for i in range(len(m.parts.types))),
    "first_subpart_defects": lambda m, want: [d for d in want if d in m.defects],
    "part_count": lambda m, _: len(m.parts.types),
    "part_content_types": lambda m, _: list(m.parts.types),
    "text_body_part_indexes": lambda m, _: list(m.parts.text_body),
    "html_body_part_indexes": lambda m, _: list(m.parts.html_body),
    "attachment_part_indexes": lambda m, _: list(m.parts.attachments),
}

# Membership tests: the source's value is what to look for, and the answer should be yes.
MEMBERSHIP = {
    "attachment_filename",
    "attachment_filename_startswith",
    "attachment_content_type",
    "html_contains",
    "html_must_not_contain",
    "has_part_type",
}

# Fields this test leaves to others, or that describe another library's own model.
NOT_HERE = {
    **dict.fromkeys(
        [
            "is_bounce",
            "decoder",
            "results",
            "report_type",
            "status_groups",
            "fields",
            "recipients",
            "status",
            "action",
            "final_recipient",
            "diagnostic_code",
            "diagnostic_code_startswith",
            "remote_mta",
            "retryable",
            "is_delivery_notification",
            "mdn_fields",
        ],
        "delivery receipts: the receipts issue compares them",
    ),
    "roundtrip_identical": "mailport never re-serialises received mail; it keeps the bytes",
    "boundary": "the boundary string is the parser's business, not the reader's",
    "first_part_boundary": "the boundary string is the parser's business, not the reader's",
    "tnef_parts": "MimeKit's own MIME rendering of a TNEF stream",
    "tnef_first_part_type": "the RTF body of a TNEF stream: mailport does not read RTF",
    "tnef_message_id": "TNEF message properties other than the body are not read",
    "encoding_problem_part_indexes": "Stalwart's own flag, set on parts it recovered",
    "line_endings": "a note on the file, not on its content",
}


def _expected(field: str, value: Any) -> Any:
    if field in MEMBERSHIP:
        return True
    if field == "decoded_payloads":  # the text body is its text parts, one after another
        return "\n".join(value)
    if field == "first_subpart_defects":
        return value
    if field == "detected_charset":
        return _codec(value)
    if field == "tnef_body":
        return {**value, "charset": _codec(value["charset"])}
    return value


def _codec(label: str) -> str:
    # Charset names compared as codecs; ISO-8859-1 labels mean windows-1252 (WHATWG).
    name = codecs.lookup(label).name
    return "cp1252" if name == "iso8859-1" else name


METADATA = {"path", "kind", "source", "asserted_by", "note", "warning", "license_note"}


def test_every_parsing_expectation() -> None:
    entries = yaml.safe_load(KNOWN.read_text())
    known = {(path, field) for e in entries for path in e["paths"] for field in e["fields"]}
    matched, total, misses, not_compared = 0, 0, [], Counter[str]()
    differing: set[str] = set()
    for path, entry in sorted(expectations().items()):
        not_compared.update(
            k for k in entry if k not in FIELDS and k not in METADATA and k not in NOT_HERE
        )
        if not any(field in entry for field in FIELDS):
            continue
        message = parse((ROOT / path).read_bytes())
        for field, read in FIELDS.items():
            want = entry.get(field)
            if want is None or not isinstance(want, type(got := read(message, want))):
                continue
            total += 1
            want = _expected(field, want)
            if got == want:
                matched += 1
                continue
            differing.add(path)
            if (path, field) not in known:
                misses.append(f"{path} {field}: got {got!r}, the source says {want!r}")
    print(
        f"\nparsing expectations: {matched}/{total} matched, {total - matched} known"
        f" differences ({len(entries)} reasons)"
    )
    print("  not compared yet:", ", ".join(f"{k} ({n})" for k, n in not_compared.most_common()))
    for miss in misses:
        print("  MISS", miss)
    assert misses == []
    stale = {path for path, _ in known} - differing
    assert not stale, f"known differences that no longer differ: {sorted(stale)}"
