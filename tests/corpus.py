"""The shared corpus of real email, read in place from ../shared/corpus (never copied here).

Where it is absent, as on a fresh clone, the tests that need it skip and say why; CI sets
MAILPORT_REQUIRE_CORPUS=1, which turns that skip into a failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(
    os.environ.get("MAILPORT_CORPUS", Path(__file__).resolve().parents[1] / "../shared/corpus")
).resolve()
NOT_MAIL = {"MANIFEST.md", "expected.jsonl"}


def corpus_files(*folders: str) -> list[Path]:
    if not (ROOT / "MANIFEST.md").is_file():
        reason = f"the shared email corpus is not at {ROOT} (set MAILPORT_CORPUS)"
        if os.environ.get("MAILPORT_REQUIRE_CORPUS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return sorted(
        p
        for folder in folders
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.name not in NOT_MAIL
    )


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def expectations() -> dict[str, dict[str, object]]:
    """The values the corpus's sources assert, by path (expected.jsonl)."""
    corpus_files()  # skips, or fails in CI, when the corpus is absent
    with open(ROOT / "expected.jsonl", encoding="utf-8") as lines:
        return {e["path"]: e for e in map(json.loads, lines)}


# Kinds of mail that answer mail: answering them in turn is how loops start.
AUTOMATIC_KINDS = {
    "autoreply",
    "bounce",
    "bounce-malformed",
    "dsn-delivered",
    "feedback-report",
    "mdn",
}
