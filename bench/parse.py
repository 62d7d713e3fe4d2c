"""`mailport bench parse`: messages per second through mailport's parser, over the corpus,
beside Python's own `email.message_from_bytes(policy=default)` on the same bytes."""

from __future__ import annotations

import email
import os
import time
from collections.abc import Callable
from email import policy
from pathlib import Path

from mailport.bench.harness import Advance, Options, Result, scenario
from mailport.mail import parse

DEFAULT = policy.default


def corpus_root(options: Options) -> Path:
    return Path(options.corpus or os.environ.get("MAILPORT_CORPUS", "../shared/corpus"))


def corpus(options: Options) -> list[bytes]:
    root = corpus_root(options)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.name not in {"MANIFEST.md", "expected.jsonl"}
    )
    if not files:
        raise SystemExit(f"no corpus at {root} (give --corpus or set MAILPORT_CORPUS)")
    return [p.read_bytes() for p in files]


@scenario("parse", "parse the email corpus; anchor: email.message_from_bytes(policy=default)")
def bench_parse(options: Options, task: Callable[[str, float], Advance]) -> Result:
    messages = corpus(options)
    size = sum(map(len, messages))
    rounds = 1 if options.quick else 5

    def measure(label: str, read: Callable[[bytes], object]) -> float:
        read(messages[0])  # warm up: imports, the language model
        advance = task(label, rounds * len(messages))
        started = time.perf_counter()
        for _ in range(rounds):
            for raw in messages:
                read(raw)
                advance(1)
        return rounds * len(messages) / (time.perf_counter() - started)

    anchor = measure("stdlib email", lambda raw: email.message_from_bytes(raw, policy=DEFAULT))
    ours = measure("mailport parse", parse)
    return Result(
        scenario="parse",
        unit="messages/s",
        mailport=round(ours, 1),
        anchor=round(anchor, 1),
        anchor_name="email.message_from_bytes",
        details={
            "messages": len(messages),
            "rounds": rounds,
            "mailport MB/s": round(ours * size / len(messages) / 1e6, 2),
            "anchor MB/s": round(anchor * size / len(messages) / 1e6, 2),
        },
    )
