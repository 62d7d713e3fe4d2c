"""Receipts reach the receipt handler of the application that sent the message, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update

from mailport.actors.receipt_handoff import ReceiptHandOff
from mailport.actors.settling import settle
from mailport.actors.transports import Result
from mailport.config.models import Application, Settings
from mailport.store import Outgoing, Store, schema
from tests.apps import LEDGER, read_ledger, receipt_ledger
from tests.stores import BACKENDS, new_database


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(new_database(request, request.param, tmp_path))
    yield store
    await store.close()


def _settings() -> Settings:
    return Settings(
        applications=(
            Application(
                name="keeper",
                handler="tests.apps:record",
                receipt_handler="tests.apps:keep_receipt",
            ),
            Application(
                name="refuser",
                handler="tests.apps:record",
                receipt_handler="tests.apps:refuse_receipt",
            ),
            Application(name="silent", handler="tests.apps:record"),
        ),
        routing={"default": "keeper"},
    )


async def _refused(store: Store, application: str) -> str:
    """Queue a message from `application`, then settle it as refused by the server."""
    message_id = f"<{application}@example.test>"
    await store.enqueue(
        [Outgoing(message_id, "s@example.test", ("gone@example.test",), b"x", False, application)]
    )
    [mail] = await store.take_outbound("relay", 10, 60.0)
    result = Result.every(mail.recipients, 550, "5.1.1 <gone@example.test>: user unknown")
    await store.settle([settle(mail, result, "relay", 3600.0, mail.queued_at + 1, "mx:25")])
    return message_id


async def test_each_receipt_is_handed_over_once_and_marked(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEDGER, str(tmp_path / "calls.jsonl"))
    kept = await _refused(store, "keeper")
    refused = await _refused(store, "refuser")
    silent = await _refused(store, "silent")
    handoff = ReceiptHandOff(_settings())

    assert await handoff.hand_over(store) == 3
    assert await handoff.hand_over(store) == 0  # nothing is handed twice

    [call] = read_ledger(receipt_ledger(str(tmp_path / "calls.jsonl")))
    assert (call["application"], call["message_id"], call["source"]) == ("keeper", kept, "smtp")
    assert [r["reason"] for r in call["receipt"]["recipients"]] == ["userunknown"]
    states = {r.message_id: (r.state, r.error) for r in await store.receipts()}
    assert states[kept] == ("handled", None)
    assert states[silent] == ("no handler", None)
    state, error = states[refused]
    assert state == "failed"
    assert error is not None and f"ValueError: cannot file the receipt for {refused}" in error
    [alarm] = await store.open_alarms()
    assert alarm["key"] == "receipts:refuser"


async def test_a_leased_receipt_is_taken_again_only_once_its_lease_ends(store: Store) -> None:
    await _refused(store, "keeper")
    [taken] = await store.take_receipts(10, lease=60.0)
    assert taken.receipt.recipients[0].status == "5.1.1"
    assert await store.take_receipts(10, lease=60.0) == []
    # Its holder died: once the lease has run out, the receipt is due again.
    async with store.engine.begin() as conn:
        await conn.execute(update(schema.receipts).values(lease_until=time.time() - 1))
    [again] = await store.take_receipts(10, lease=60.0)
    assert again.id == taken.id


async def test_two_shards_leasing_receipts_at_once_never_take_the_same_one(store: Store) -> None:
    for n in range(40):
        await _refused(store, f"app{n}")
    other = await Store.open(store.engine.url.render_as_string(hide_password=False))
    try:

        async def drain(s: Store) -> list[int]:
            taken: list[int] = []
            while batch := await s.take_receipts(3, lease=60.0):
                taken += [r.id for r in batch]
            return taken

        mine, theirs = await asyncio.gather(drain(store), drain(other))
    finally:
        await other.close()
    assert sorted(mine + theirs) == [r.id for r in await store.receipts(state="pending")]
    assert len(mine + theirs) == 40
