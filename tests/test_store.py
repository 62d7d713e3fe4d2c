"""The store's guarantees: dedupe, fencing, one-transaction outcomes, outbound leases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

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
    schema,
)
from tests.servers.postgres import Postgres
from tests.stores import BACKENDS, new_database


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(new_database(request, request.param, tmp_path))
    yield store
    await store.close()


@pytest.fixture(params=BACKENDS)
async def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, each with its own engine: two nodes, as far as the
    database can tell."""
    url = new_database(request, request.param, tmp_path)
    a, b = await Store.open(url), await Store.open(url)
    yield a, b
    await a.close()
    await b.close()


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


async def test_text_from_outside_is_kept_as_postgresql_can_hold_it(store: Store) -> None:
    """A NUL in a header, or a Message-ID longer than a line may be: both come in real mail;
    PostgreSQL refuses the first and enforces column lengths, SQLite does neither."""
    await store.fence("c", 1)
    await store.claim("c", 1, ["k"])
    long_id = "<" + "x" * 1200 + "@x.example>"
    contact = Contact("in", "c", "app", long_id, "a\x00b@x.example", (), "hi\x00there", "handled")
    assert await store.finish([Finished("c", 1, "k", Fate.DONE, contact)]) == [True]
    [row] = await store.rows("contacts")
    assert (row["subject"], row["sender"]) == ("hithere", "ab@x.example")
    assert row["message_id"] == long_id[:998]


async def test_two_nodes_leasing_at_once_never_take_the_same_mail(
    two_stores: tuple[Store, Store],
) -> None:
    a, b = two_stores
    await a.enqueue([_reply(n) for n in range(300)])

    async def drain(store: Store, connection: str) -> list[int]:
        leased: list[int] = []
        while batch := await store.take_outbound(connection, 7, lease=60):
            leased += [m.id for m in batch]
        return leased

    by_a, by_b = await asyncio.gather(drain(a, "a"), drain(b, "b"))
    assert len(by_a) + len(by_b) == 300
    assert len(set(by_a) | set(by_b)) == 300
    rows = await a.rows("outbound")
    # Each lease counts an attempt: a row leased twice would show 2.
    assert {(r["state"], r["attempts"]) for r in rows} == {("sending", 1)}
    assert sorted(r["id"] for r in rows if r["connection"] == "a") == sorted(by_a)


async def test_mail_one_node_is_leasing_is_passed_over_by_another(
    postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.url(postgres.new_database())
    a, b = await Store.open(url), await Store.open(url)
    try:
        await a.enqueue([_reply(n) for n in range(4)])
        t = schema.outbound
        async with a.engine.begin() as conn:
            # What a lease holds while it runs: the first two rows, locked.
            query = select(t.c.id).order_by(t.c.id).limit(2).with_for_update()
            assert len((await conn.execute(query)).all()) == 2
            taken = await asyncio.wait_for(b.take_outbound("b", 10, lease=60), 5)
            assert [m.message_id for m in taken] == ["<r2@x.example>", "<r3@x.example>"]
    finally:
        await a.close()
        await b.close()


async def test_two_nodes_finishing_the_same_mail_finish_it_once(
    two_stores: tuple[Store, Store],
) -> None:
    a, b = two_stores
    keys = [f"k{n}" for n in range(50)]
    await a.fence("c", 1)
    await asyncio.gather(a.claim("c", 1, keys), b.claim("c", 1, keys))
    outcomes = [
        Finished("c", 1, k, Fate.DONE, _contact(), (_reply(n),)) for n, k in enumerate(keys)
    ]
    by_a, by_b = await asyncio.gather(a.finish(outcomes), b.finish(outcomes))
    assert [x + y for x, y in zip(by_a, by_b, strict=True)] == [1] * 50
    assert len(await a.rows("contacts")) == 50
    assert len(await a.rows("outbound")) == 50
    assert await a.fates(keys) == dict.fromkeys(keys, Fate.DONE)


async def test_messages_finished_without_a_claim_are_finished_once(
    two_stores: tuple[Store, Store],
) -> None:
    a, b = two_stores
    await a.fence("c", 1)
    outcomes = [Finished("c", 1, f"k{n}", Fate.DONE, _contact()) for n in range(30)]
    by_a, by_b = await asyncio.gather(a.finish(outcomes), b.finish(outcomes))
    assert [x + y for x, y in zip(by_a, by_b, strict=True)] == [1] * 30
    assert len(await a.rows("contacts")) == 30
    assert {(r["state"], r["epoch"]) for r in await a.rows("inbound")} == {("done", 1)}


async def test_epochs_raised_by_two_nodes_at_once_never_go_back(
    two_stores: tuple[Store, Store],
) -> None:
    a, b = two_stores
    epochs = list(range(1, 41))
    now_in_force = await asyncio.gather(
        *(a.fence("c", e) if e % 2 else b.fence("c", e) for e in epochs)
    )
    assert all(f >= e for f, e in zip(now_in_force, epochs, strict=True))
    assert await a.fence("c", 0) == 40
    assert await a.rows("fences") == [{"connection": "c", "epoch": 40}]


async def test_an_alarm_raised_by_two_nodes_at_once_is_one_alarm(
    two_stores: tuple[Store, Store],
) -> None:
    a, b = two_stores
    await asyncio.gather(*(s.raise_alarm("inbound:a", "down") for s in (a, b) * 20))
    assert [(x["key"], x["count"]) for x in await a.open_alarms()] == [("inbound:a", 40)]


async def test_the_reply_limit_holds_for_shards_finishing_at_once(
    two_stores: tuple[Store, Store],
) -> None:
    a, b = two_stores
    await a.fence("c", 1)
    before = time.time() - 1
    limit = ReplyLimit("ann@x.example", 3, before)

    async def one(store: Store, n: int) -> None:
        contact = Contact(
            "in", "c", "app", f"<in{n}@x.example>", "ann@x.example", (), "s", "handled"
        )
        done = Finished("c", 1, f"ann:{n}", Fate.DONE, contact, (_reply(n),), limit=limit)
        assert await store.finish([done]) == [True]

    await asyncio.gather(*(one(a if n % 2 else b, n) for n in range(12)))
    assert len(await a.rows("outbound")) == 3
    assert len(await a.rows("contacts", status="unanswerable")) == 9
