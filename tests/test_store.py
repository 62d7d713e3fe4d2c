"""The store's guarantees: dedupe, fencing, one-transaction outcomes, outbound leases."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailport.store import (
    Contact,
    Fate,
    Fenced,
    Finished,
    Outgoing,
    RecipientAttempt,
    ReplyLimit,
    Settled,
    Store,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    yield store
    await store.close()


def _contact() -> Contact:
    return Contact(
        "in", "c", "app", "<m@x.example>", "a@x.example", ("b@x.example",), "s", "handled"
    )


def _reply(n: int) -> Outgoing:
    return Outgoing(f"<r{n}@x.example>", "b@x.example", ("a@x.example",), b"data", False, "app")


async def test_claim_dedupes_and_finish_is_once(store: Store) -> None:
    await store.fence("c", 5)
    assert await store.claim("c", 5, ["k1", "k2"]) == {"k1": Fate.CLAIMED, "k2": Fate.CLAIMED}
    done = Finished("c", 5, "k1", Fate.DONE, _contact(), (_reply(1),))
    assert await store.finish([done]) == [True]
    assert await store.finish([done]) == [False]
    assert await store.claim("c", 5, ["k1", "k2"]) == {"k1": Fate.DONE, "k2": Fate.CLAIMED}
    assert len(await store.rows("outbound")) == 1
    assert len(await store.rows("contacts")) == 1


async def test_a_stale_epoch_can_neither_claim_nor_finish(store: Store) -> None:
    await store.fence("c", 1)
    await store.claim("c", 1, ["k"])
    assert await store.fence("c", 2) == 2
    with pytest.raises(Fenced):
        await store.claim("c", 1, ["k2"])
    with pytest.raises(Fenced):
        await store.finish([Finished("c", 1, "k", Fate.DONE, _contact())])
    assert await store.fence("c", 1) == 2  # an epoch never goes back
    assert await store.finish([Finished("c", 2, "k", Fate.DONE, _contact())]) == [True]


async def test_quarantine_keeps_the_bytes_and_the_reason(store: Store) -> None:
    await store.fence("c", 1)
    reason = "not an RFC 5322 message"
    await store.finish(
        [Finished("c", 1, "q", Fate.QUARANTINED, _contact(), quarantine=(reason, b"\x00junk"))]
    )
    [row] = await store.rows("quarantine")
    assert (row["reason"], row["raw"]) == ("not an RFC 5322 message", b"\x00junk")


async def test_outbound_lease_frees_mail_whose_holder_died(store: Store) -> None:
    await store.enqueue([_reply(1), _reply(2)])
    taken = await store.take_outbound("a", 10, lease=-1)  # a lease already over
    assert [m.message_id for m in taken] == ["<r1@x.example>", "<r2@x.example>"]
    again = await store.take_outbound("b", 10, lease=60)
    assert [m.attempts for m in again] == [2, 2]
    assert await store.take_outbound("c", 10, lease=60) == []
    sent, later = again
    await store.settle(
        [
            Settled(sent.id, 2, "b", "sent", (RecipientAttempt("a@x.example", "sent", 250, "ok"),)),
            Settled(
                later.id,
                2,
                "b",
                "deferred",
                (RecipientAttempt("a@x.example", "deferred", 451, "try later"),),
                note="a@x.example: 451 try later",
                retry_at=time.time() + 3600,
                pending=("a@x.example",),
            ),
        ]
    )
    assert await store.outbound_states() == {"sent": 1, "deferred": 1}
    assert await store.take_outbound("c", 10, lease=60) == []  # not due for an hour


async def test_alarms_count_repeats_and_clear(store: Store) -> None:
    await store.raise_alarm("inbound:a", "a: LOGIN failed")
    await store.raise_alarm("inbound:a", "a: LOGIN failed again")
    await store.raise_alarm("quarantine:a", "a: message quarantined", severity="warning")
    alarms = {a["key"]: a for a in await store.open_alarms()}
    assert (alarms["inbound:a"]["count"], alarms["inbound:a"]["text"]) == (
        2,
        "a: LOGIN failed again",
    )
    await store.clear_alarm("inbound:a")
    assert [a["key"] for a in await store.open_alarms()] == ["quarantine:a"]
    await store.raise_alarm("inbound:a", "a: refused")
    assert [a["count"] for a in await store.open_alarms() if a["key"] == "inbound:a"] == [1]


async def test_an_operators_pool_size_holds_until_the_settings_change(store: Store) -> None:
    assert await store.pool_size("relay", configured=4) == 4
    assert await store.set_pool_size("relay", 2, who="cli:ops", configured=4) == 4
    assert await store.pool_size("relay", configured=4) == 2  # a restart keeps it
    assert await store.set_pool_size("relay", 6, who="cli:ops", configured=4) == 2
    assert await store.pool_size("relay", configured=8) == 8  # the file was edited since
    assert await store.pool_size("relay", configured=8) == 8
    log = [(e["who"], e["action"], e["detail"]) for e in reversed(await store.audit_log())]
    assert log == [
        ("cli:ops", "pool.resize", "pool size 4 -> 2"),
        ("cli:ops", "pool.resize", "pool size 2 -> 6"),
        (
            "settings",
            "pool.reset",
            "pool size 6 -> 8: the settings changed from 4 to 8, and the settings win",
        ),
    ]


async def test_replies_to_a_sender_are_counted_over_a_period(store: Store) -> None:
    """What the per-sender limit on automatic replies reads (RFC 3834 section 2)."""
    await store.fence("c", 1)
    before = time.time()
    for n in range(3):
        key = f"c:ann:{n}"
        await store.claim("c", 1, [key])
        contact = Contact(
            "in", "c", "app", f"<in{n}@x.example>", "ann@x.example", (), "s", "handled"
        )
        await store.finish([Finished("c", 1, key, Fate.DONE, contact, (_reply(n),))])
    unanswered = Contact("in", "c", "app", "<in9@x.example>", "ann@x.example", (), "s", "handled")
    await store.claim("c", 1, ["c:ann:9"])
    await store.finish([Finished("c", 1, "c:ann:9", Fate.DONE, unanswered)])
    assert await store.replies_to("ANN@x.example", before) == 3
    assert await store.replies_to("bob@x.example", before) == 0
    assert await store.replies_to("ann@x.example", time.time() + 1) == 0
    # Past the limit, the reply is not queued and the message says why.
    await store.claim("c", 1, ["c:ann:10"])
    contact = Contact("in", "c", "app", "<in10@x.example>", "ann@x.example", (), "s", "handled")
    limit = ReplyLimit("ann@x.example", 3, before)
    await store.finish(
        [Finished("c", 1, "c:ann:10", Fate.DONE, contact, (_reply(10),), limit=limit)]
    )
    [row] = await store.rows("contacts", dedupe_key="c:ann:10")
    assert (row["status"], row["reason"]) == (
        "unanswerable",
        "the limit of 3 automatic replies a day to this sender is reached",
    )
    assert await store.rows("outbound", source_key="c:ann:10") == []
