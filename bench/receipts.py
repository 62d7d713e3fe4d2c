"""`mailport bench receipts`: bounces classified per second over the corpus's bounces, beside
Python's `email.message_from_bytes` on the same bytes, the cost of only reading them."""

from __future__ import annotations

import email
import time
from collections.abc import Callable
from email import policy

from mailport.bench.harness import Advance, Options, Result, scenario
from mailport.bench.parse import corpus_root
from mailport.mail.receipts import classify


@scenario("receipts", "classify the corpus's bounces; anchor: email.message_from_bytes")
def bench_receipts(options: Options, task: Callable[[str, float], Advance]) -> Result:
    root = corpus_root(options)
    messages = [p.read_bytes() for p in sorted((root / "bounces").rglob("*")) if p.is_file()]
    if not messages:
        raise SystemExit(f"no bounces under {root / 'bounces'}")
    rounds = 1 if options.quick else 5

    def measure(label: str, read: Callable[[bytes], object]) -> float:
        read(messages[0])  # warm up: imports, compiled patterns
        advance = task(label, rounds * len(messages))
        started = time.perf_counter()
        for _ in range(rounds):
            for raw in messages:
                read(raw)
                advance(1)
        return rounds * len(messages) / (time.perf_counter() - started)

    anchor = measure(
        "stdlib email", lambda raw: email.message_from_bytes(raw, policy=policy.default)
    )
    ours = measure("mailport receipts", classify)
    kinds: dict[str, int] = {}
    for raw in messages:
        kind = classify(raw).kind
        kinds[kind] = kinds.get(kind, 0) + 1
    return Result(
        scenario="receipts",
        unit="messages/s",
        mailport=round(ours, 1),
        anchor=round(anchor, 1),
        anchor_name="email.message_from_bytes",
        details={"messages": len(messages), "rounds": rounds, "kinds": kinds},
    )
