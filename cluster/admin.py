"""What admins change while the system runs. Each change goes through the store, where the
running actors pick it up and the audit log keeps who made it."""

from __future__ import annotations

import getpass

from mailport.config.models import Settings, SmtpOutbound
from mailport.store import Store


class AdminError(Exception):
    """The change cannot be made as asked; the message says why."""


async def resize_pool(settings: Settings, connection: str, size: int) -> tuple[int, int]:
    """Set an SMTP connection's pool size; returns (old size, new size)."""
    config = next((c for c in settings.outbound if c.name == connection), None)
    if config is None:
        names = ", ".join(c.name for c in settings.outbound) or "none"
        raise AdminError(f"no outbound connection named {connection!r} (configured: {names})")
    if not isinstance(config, SmtpOutbound):
        raise AdminError(f"{connection!r} is a {config.kind} connection; only SMTP pools resize")
    if not 1 <= size <= 256:
        raise AdminError(f"a pool holds 1 to 256 sessions, not {size}")
    store = await Store.open(settings.store.url)
    try:
        who = f"cli:{getpass.getuser()}"
        old = await store.set_pool_size(connection, size, who=who, configured=config.pool_size)
    finally:
        await store.close()
    return old, size


async def push_settings(settings: Settings) -> int:
    """Make `settings`' connections, applications and rules the cluster's; every node
    applies them within moments. Returns the etcd revision they became."""
    from mailport.cluster import shared_config
    from mailport.cluster.etcd import client

    cluster = settings.cluster
    if cluster.coordinator != "etcd":
        raise AdminError("only a cluster (cluster.coordinator: etcd) keeps shared settings")
    etcd = client(cluster.etcd)
    try:
        return await shared_config.publish(etcd, cluster.prefix, settings)
    except Exception as exc:
        raise AdminError(f"etcd at {', '.join(cluster.etcd)}: {exc}") from exc
    finally:
        await etcd.close()
