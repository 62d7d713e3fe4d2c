"""The cluster's settings, kept in etcd with revisions and watched by every node.

Connections, applications, routing and limits are the cluster's: one document under
``PREFIX/config``, each change a new etcd revision. What is a node's own (its data
directory, its shard count, how it reaches etcd and Ray, its store URL) stays in its local
settings file. Secrets are never in the document: settings name where a secret is (an
environment variable or a file), so each node reads its own."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aetcd.exceptions import RevisionCompactedError

from mailport.config.models import Settings

log = logging.getLogger(__name__)

SHARED = (
    "inbound",
    "outbound",
    "applications",
    "routing",
    "automatic_replies_per_sender",
    "outbound_lifetime",
)
REWATCH = 0.5  # seconds between attempts to watch again after an error


def key(prefix: str) -> bytes:
    return f"{prefix}/config".encode()


def shared_part(settings: Settings) -> dict[str, Any]:
    data = settings.model_dump(mode="json")
    return {name: data[name] for name in SHARED}


def merged(local: Settings, shared: dict[str, Any]) -> Settings:
    """The node's own settings with the cluster's document in place of their shared part;
    raises pydantic's ValidationError when the document is not valid settings."""
    data = local.model_dump(mode="json")
    data.update({name: shared[name] for name in SHARED if name in shared})
    return Settings.model_validate(data)


async def publish(etcd: Any, prefix: str, settings: Settings) -> int:
    """Store the shared part of `settings`; the etcd revision it became."""
    value = json.dumps(shared_part(settings), sort_keys=True).encode()
    reply = await etcd.put(key(prefix), value)
    return int(reply.header.revision)


async def seed(etcd: Any, prefix: str, settings: Settings) -> bool:
    """Store the shared part of `settings` unless the cluster has settings already; True
    when these became the cluster's (the first node of a new cluster)."""
    ops = etcd.transactions
    value = json.dumps(shared_part(settings), sort_keys=True).encode()
    seeded, _ = await etcd.transaction(
        compare=[ops.create(key(prefix)) == 0], success=[ops.put(key(prefix), value)], failure=[]
    )
    return bool(seeded)


async def read(etcd: Any, prefix: str) -> tuple[dict[str, Any] | None, int]:
    """The cluster's document and the revision that wrote it (None, 0 when there is none)."""
    found = await etcd.get(key(prefix))
    if found is None:
        return None, 0
    return json.loads(found.value), int(found.mod_revision)


async def watch(etcd: Any, prefix: str, after: int) -> AsyncIterator[tuple[dict[str, Any], int]]:
    """Each new version of the document after revision `after`, with its revision. aetcd
    does not watch again after an error, so this does, from the last revision it saw: a
    change made while the watch was down still arrives, once."""
    while True:
        try:
            watcher = await etcd.watch(key(prefix), start_revision=after + 1)
            async for event in watcher:
                revision = int(event.kv.mod_revision)
                if revision <= after or event.kind != "PUT":
                    continue
                after = revision
                yield json.loads(event.kv.value), revision
        except asyncio.CancelledError:
            raise
        except RevisionCompactedError:
            # The revisions we missed are gone: the document as it is now is what counts.
            data, revision = await read(etcd, prefix)
            if data is not None and revision > after:
                after = revision
                yield data, revision
        except Exception as exc:
            log.warning("watching the cluster settings: %s; watching again", exc)
        await asyncio.sleep(REWATCH)
