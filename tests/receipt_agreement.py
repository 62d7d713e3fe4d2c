"""mailport's bounce reading beside sisimai's, on the bounces sisimai asserts results for.

How sisimai's pseudo-codes are compared: sisimai writes X.0.9YY when the bounce carries no
status code and it inferred one from its reason. Such a code states only the class (failed
for good, or for now), so only the class of ours is compared with it. Every other status is
compared exactly.

Run `python -m tests.receipt_agreement` to print the table and every miss."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailport.mail.receipts import Receipt, classify
from tests.corpus import ROOT, expectations

PSEUDO = re.compile(r"^[245]\.0\.9\d\d$")
MEASURES = ("is_bounce", "recipient_count", "status", "reply_code", "reason", "hard_bounce")


@dataclass
class Miss:
    path: str
    measure: str
    index: int
    expected: object
    got: object

    def key(self) -> str:
        return f"{self.path} #{self.index} {self.measure}"


@dataclass
class Agreement:
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEASURES, 0))
    misses: list[Miss] = field(default_factory=list)

    def agreed(self, measure: str) -> int:
        return self.checked[measure] - sum(m.measure == measure for m in self.misses)

    def share(self, measure: str) -> float:
        return self.agreed(measure) / max(1, self.checked[measure])


def sisimai_bounces() -> Iterator[tuple[str, dict[str, object]]]:
    for path, entry in sorted(expectations().items()):
        if path.startswith("bounces/") and "results" in entry:
            yield path, entry


def is_bounce(receipt: Receipt) -> bool:
    """sisimai's notion: a report of mail not delivered, for good or for now."""
    return receipt.kind == "dsn" and any(
        r.action in ("failed", "delayed") for r in receipt.recipients
    )


def measure() -> Agreement:
    agreement = Agreement()
    for path, entry in sisimai_bounces():
        _compare(agreement, path, entry, read((ROOT / path).read_bytes()))
    return agreement


# An mbox "From " line with its asctime date. Some files sisimai reads as mboxes have no
# blank line before it, which mail.mbox (rightly, for mail it splits) requires.
_FROM_LINE = re.compile(rb"\n(?=From \S+ +\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\r?\n)")


def read(raw: bytes) -> Receipt:
    """The receipt for a file; an mbox of several bounces (as sisimai reads it) gives all
    their recipients, in order."""
    receipts = [classify(m) for m in _FROM_LINE.split(raw)]
    if len(receipts) == 1:
        return receipts[0]
    dsns = [r for r in receipts if r.kind == "dsn"]
    if not dsns:
        return receipts[0]
    return Receipt(
        "dsn",
        dsns[0].original_message_id,
        recipients=tuple(status for r in dsns for status in r.recipients),
    )


def _compare(a: Agreement, path: str, entry: dict[str, object], receipt: Receipt) -> None:
    def check(measure: str, index: int, expected: object, got: object, same: bool) -> None:
        a.checked[measure] += 1
        if not same:
            a.misses.append(Miss(path, measure, index, expected, got))

    check(
        "is_bounce",
        0,
        entry["is_bounce"],
        is_bounce(receipt),
        entry["is_bounce"] == is_bounce(receipt),
    )
    results = entry["results"]
    assert isinstance(results, list)
    got = [r for r in receipt.recipients if r.action in ("failed", "delayed")]
    check("recipient_count", 0, len(results), len(got), len(results) == len(got))
    for want, ours in zip(results, got, strict=False):
        i = int(want["index"])
        status = str(want["status"])
        pseudo = PSEUDO.match(status)
        same = ours.status[:1] == status[:1] if pseudo else ours.status == status
        check("status", i, status, ours.status, same)
        code = str(want["reply_code"])
        check(
            "reply_code",
            i,
            code,
            ours.reply_code,
            code == ("" if ours.reply_code is None else str(ours.reply_code)),
        )
        check("reason", i, want["reason"], ours.reason, want["reason"] == ours.reason)
        check(
            "hard_bounce",
            i,
            want["hard_bounce"],
            ours.hard_bounce,
            want["hard_bounce"] == ours.hard_bounce,
        )
    for want in results[len(got) :]:
        i = int(want["index"])
        for m in ("status", "reply_code", "reason", "hard_bounce"):
            check(m, i, want[m if m != "status" else "status"], None, False)


def table(a: Agreement) -> str:
    lines = [f"{'measure':<16} {'agree':>6} {'of':>5} {'share':>7}"]
    for m in MEASURES:
        lines.append(f"{m:<16} {a.agreed(m):>6} {a.checked[m]:>5} {a.share(m):>7.1%}")
    return "\n".join(lines)


def main() -> None:
    a = measure()
    print(table(a))
    for miss in a.misses:
        print(f"MISS {miss.key()}: sisimai {miss.expected!r}, mailport {miss.got!r}")


if __name__ == "__main__":
    main()
