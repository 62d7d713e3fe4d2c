"""Applications for the tests: they answer like `acknowledge` and keep a ledger of every call,
written outside any transaction, so a test sees each time the application really ran."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ray

from mailport.actors.acknowledge import acknowledge
from mailport.actors.application import ApplicationContext
from mailport.actors.receipt_handoff import ReceiptContext

LEDGER = "MAILPORT_TEST_LEDGER"


def record(ctx: ApplicationContext) -> None:
    line = json.dumps(
        {
            "connection": ctx.connection,
            "key": ctx.dedupe_key,
            "message_id": ctx.message.message_id,
            "subject": ctx.message.subject,
            "at": time.time(),
            # Which node ran it: each node's actors live in a Ray namespace of its own.
            "namespace": ray.get_runtime_context().namespace if ray.is_initialized() else None,
        }
    )
    with open(os.environ[LEDGER], "a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")
    acknowledge(ctx)


def keep_receipt(ctx: ReceiptContext) -> None:
    """A receipt handler: the ledger gets one line a receipt, as the application saw it."""
    line = json.dumps(
        {
            "receipt": ctx.receipt.as_dict(),
            "application": ctx.application,
            "message_id": ctx.message_id,
            "source": ctx.source,
        }
    )
    with open(receipt_ledger(os.environ[LEDGER]), "a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")


def refuse_receipt(ctx: ReceiptContext) -> None:
    raise ValueError(f"cannot file the receipt for {ctx.message_id}")


def receipt_ledger(ledger: str) -> str:
    """Where keep_receipt writes, beside the ledger of application calls."""
    return ledger + ".receipts"


def explode(ctx: ApplicationContext) -> None:
    raise RuntimeError("this application always fails")


def read_ledger(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as ledger:
            return [json.loads(line) for line in ledger if line.strip()]
    except FileNotFoundError:
        return []


TOKEN = "MAILPORT_TEST_OAUTH_TOKEN"


async def oauth_token(connection: str) -> str:
    """An OAuth2 token provider: a real one would refresh through the identity provider."""
    token = os.environ.get(TOKEN)
    if not token:
        raise RuntimeError(f"no token for {connection}: the identity provider refused")
    return token
