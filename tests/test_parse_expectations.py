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

# The expectation fields compared, each with how to read the same value from mailport.
FIELDS: dict[str, Callable[[ParsedMessage], Any]] = {
    "subject": lambda m: m.subject,
    "from_addresses": lambda m: [a.address for a in m.from_],
    "from_display": lambda m: [a.name for a in m.from_],
    "to_addresses": lambda m: [a.address for a in m.to],
    "attachments": lambda m: len(m.attachments),
    "attachment_filenames": lambda m: [a.filename for a in m.attachments if a.filename],
    "attachment_sizes": lambda m: [a.size for a in m.attachments],
    "attachment_content_types": lambda m: [a.content_type for a in m.attachments],
    "text_body_exact": lambda m: m.text,
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
            if field not in entry or not isinstance(entry[field], type(read(message))):
                continue
            total += 1
            got, want = read(message), _expected(field, entry[field])
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
