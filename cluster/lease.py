"""A node's etcd lease, kept alive about every TTL/3 (aetcd does not keep leases itself).

While the lease lives, the keys written under it (membership, leadership) stand for this
node. The node counts the lease as lost from the moment it *sent* the last refresh that
succeeded, plus the TTL: etcd's own count starts later, so the node never believes it owns
work that etcd has already given away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, etcd: Any, ttl: int) -> None:
        self.etcd = etcd
        self.ttl = ttl
        self.id: int | None = None
        self.valid_until = 0.0
        self.generation = 0
        """Counts leases granted: a new one means every key under the old one is gone."""
        self._keeper: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.id is not None and time.monotonic() < self.valid_until

    async def ensure(self) -> bool:
        """Make sure a live lease is held, granting a new one if the old expired; True when
        the lease is new (its keys must be written again)."""
        if self.alive:
            return False
        sent = time.monotonic()
        granted = await self.etcd.lease(self.ttl)
        self.id, self.valid_until = granted.id, sent + self.ttl
        self.generation += 1
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep())
        return True

    async def _keep(self) -> None:
        while self.id is not None:
            await asyncio.sleep(self.ttl / 3)
            lease_id, sent = self.id, time.monotonic()
            try:
                reply = await self.etcd.refresh_lease(lease_id)
            except Exception as exc:  # etcd unreachable: the lease runs down meanwhile
                log.warning("etcd lease refresh failed: %s", exc)
                continue
            if lease_id != self.id:
                continue
            if reply is None or reply.TTL <= 0:  # expired at etcd: ensure() grants anew
                self.valid_until = 0.0
                return
            self.valid_until = sent + reply.TTL

    def stop_keepalive(self) -> None:
        """Stop refreshing (the lease then runs out), as a stalled process would."""
        if self._keeper is not None:
            self._keeper.cancel()

    async def revoke(self) -> None:
        """Give the lease up at once: its keys vanish now, not a TTL later."""
        self.stop_keepalive()
        lease_id, self.id = self.id, None
        if lease_id is not None:
            with contextlib.suppress(Exception):
                await self.etcd.revoke_lease(lease_id)
