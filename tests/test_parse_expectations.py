"""Parse every message the corpus's sources assert something about, and compare."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mailport.mail import ParsedMessage, parse
from tests.corpus import ROOT, expectations

KNOWN = Path(__file__).with_name("parse_known_differences.yaml")

# The expectation fields compared, each with how to read the same value from mailport
# (given the expectation, for the fields that count a substring).
FIELDS: dict[str, Callable[[ParsedMessage, Any], Any]] = {
    "parses_without_error": lambda m, _: m.fatal is None,
    "subject": lambda m, _: m.subject,
    "from_addresses": lambda m, _: [a.address for a in m.from_],
    "from_display": lambda m, _: [a.name for a in m.from_],
    "to_addresses": lambda m, _: [a.address for a in m.to],
    "attachments": lambda m, _: len(m.attachments),
    "attachment_filenames": lambda m, _: [a.filename for a in m.attachments if a.filename],
    "attachment_sizes": lambda m, _: [a.size for a in m.attachments],
    "attachment_decoded_sizes": lambda m, _: [a.size for a in m.attachments],
    "attachment_names": lambda m, _: [a.filename for a in m.attachments],
    "attachment_content_types": lambda m, _: [a.content_type for a in m.attachments],
    "attachment_dispositions": lambda m, _: [
        "inline" if a.inline else "attachment" for a in m.attachments
    ],
    "embedded_count": lambda m, _: sum(a.inline for a in m.attachments),
    "text_body_exact": lambda m, _: m.text,
    "html_body_exact": lambda m, _: m.html or "",
    "text_body_count": lambda m, want: {
        "substring": want["substring"],
        "count": m.text.count(want["substring"]),
    },
    "html_body_count": lambda m, want: {
        "substring": want["substring"],
        "count": (m.html or "").count(want["substring"]),
    },
}


METADATA = {"path", "kind", "source", "asserted_by", "note", "warning", "license_note"}


def _expected(field: str, value: Any) -> Any:
    # Unfolding joins a folded subject's lines with single spaces, as clients show it.
    return " ".join(value.split()) if field == "subject" else value


def test_every_parsing_expectation() -> None:
    known = {(k["path"], k["field"]) for k in yaml.safe_load(KNOWN.read_text())}
    matched, total, misses, not_compared = 0, 0, [], Counter[str]()
    for path, entry in sorted(expectations().items()):
        not_compared.update(k for k in entry if k not in FIELDS and k not in METADATA)
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
            elif (path, field) not in known:
                misses.append(f"{path} {field}: got {got!r}, the source says {want!r}")
    print(f"\nparsing expectations: {matched}/{total} matched, {len(known)} known differences")
    print("  not compared yet:", ", ".join(f"{k} ({n})" for k, n in not_compared.most_common()))
    for miss in misses:
        print("  MISS", miss)
    assert misses == []
    assert matched + len(known) == total
