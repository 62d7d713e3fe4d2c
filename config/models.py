"""The typed settings of a mailport node. These models are the single description of config."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mailport.config.secrets import SecretSource

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, Field(pattern=_NAME)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Security(StrEnum):
    NONE = "none"
    TLS = "tls"
    STARTTLS = "starttls"


class _Server(_Model):
    host: str
    port: int = Field(ge=1, le=65535)
    security: Security = Security.TLS
    verify_certificate: bool = True
    ca_file: Path | None = None
    """Trust this CA bundle instead of the system's (private or test CAs)."""
    timeout: float = Field(default=30.0, gt=0)


class _Placed(_Model):
    """Where an inbound connection may run in a cluster."""

    weight: int = Field(default=1, ge=1)
    """The work it brings: the leader balances nodes by the sum of their weights."""
    zone: str | None = None
    """Serve it only on nodes of this zone (`cluster.zone`); None: on any node."""


class _Mailbox(_Server, _Placed):
    username: str
    password: SecretSource


_ACTION = re.compile(r"^(flag|delete|leave|move:.+)$")


class ImapInbound(_Mailbox):
    kind: Literal["imap"]
    name: Name
    folder: str = "INBOX"
    after: str = "flag"
    """What to do on the server once a message is processed: flag | move:FOLDER | delete."""
    processed_flag: str = "$MailportProcessed"
    poll_interval: float = Field(default=30.0, gt=0)
    idle: bool = True
    idle_renew: float = Field(default=25 * 60, gt=0, le=29 * 60)
    """Re-issue IDLE before the server's 30-minute limit (RFC 2177)."""
    batch_size: int = Field(default=50, ge=1, le=1000)

    @field_validator("after")
    @classmethod
    def _action(cls, value: str) -> str:
        if not _ACTION.match(value) or value == "leave":
            raise ValueError("must be 'flag', 'move:FOLDER' or 'delete'")
        return value


class Pop3Inbound(_Mailbox):
    kind: Literal["pop3"]
    name: Name
    after: Literal["delete", "leave"] = "delete"
    """POP3 has no flags or folders: delete, or leave and rely on UIDL dedupe."""
    poll_interval: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=50, ge=1, le=1000)


class SmtpListenerInbound(_Placed):
    kind: Literal["smtp-listener"]
    name: Name
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=1, le=65535)
    max_message_size: int = Field(default=50 * 1024 * 1024, gt=0)


Inbound = Annotated[ImapInbound | Pop3Inbound | SmtpListenerInbound, Field(discriminator="kind")]


class DsnRequest(_Model):
    """RFC 3461 delivery status notifications, asked for where the server offers DSN."""

    notify: tuple[Literal["SUCCESS", "FAILURE", "DELAY"], ...] | Literal["NEVER"] = (
        "FAILURE",
        "DELAY",
    )
    ret: Literal["HDRS", "FULL"] = "HDRS"
    """What a bounce carries back: the headers (the usual choice) or the whole message."""


class SmtpOutbound(_Server):
    kind: Literal["smtp"]
    name: Name
    port: int = Field(default=587, ge=1, le=65535)
    security: Security = Security.STARTTLS
    username: str | None = None
    password: SecretSource | None = None
    pool_size: int = Field(default=2, ge=1, le=256)
    helo_name: str | None = None
    max_per_minute: int | None = Field(default=None, ge=1)
    """Transactions a minute this connection may start; None for no limit."""
    max_recipients: int = Field(default=100, ge=1)
    """Recipients in one transaction (RFC 5321 section 4.5.3.1.8 requires servers to take
    100); a message for more is sent as several."""
    sender_domains: list[str] = Field(default_factory=list)
    """Sender domains this connection may carry; empty for any."""
    dsn: DsnRequest | None = None
    """Registered delivery: ask for DSNs (NOTIFY, RET, and ENVID naming the queued message)."""
    verp: bool = False
    """VERP return paths: each message is sent from `local+mailport.<id>@domain`, so a
    bounce names the message it reports on even when the bouncing server drops the ENVID.
    The sender's server must deliver plus-addresses to the sender's mailbox."""
    auth_mechanism: Literal["PLAIN", "LOGIN", "XOAUTH2"] | None = None
    """None: PLAIN where offered, else LOGIN."""
    token_provider: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    """For XOAUTH2: `module:function`, called with the connection's name for a fresh access
    token (it may be async) each time a session logs in."""

    @model_validator(mode="after")
    def _auth_pair(self) -> SmtpOutbound:
        secret = self.password is not None or self.token_provider is not None
        if (self.username is None) == secret:
            raise ValueError("username goes with a password or a token_provider")
        if self.token_provider is not None and self.auth_mechanism not in (None, "XOAUTH2"):
            raise ValueError("a token_provider is for auth_mechanism XOAUTH2")
        return self


class MaildirOutbound(_Model):
    kind: Literal["maildir"]
    name: Name
    path: Path = Path("var/outbox")


Outbound = Annotated[SmtpOutbound | MaildirOutbound, Field(discriminator="kind")]


class Application(_Model):
    name: Name
    handler: str = Field(pattern=r"^[\w.]+:[\w.]+$")
    """`module:function`, called with an ApplicationContext."""
    address: str = "mailport@localhost"
    """The From address of what the application sends."""
    receipt_handler: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    """`module:function`, called with a ReceiptContext for each receipt (a refusal, a
    DSN, an MDN, an auto-reply) that answers a message this application sent."""


class Rule(_Model):
    recipient: str
    application: Name


class Routing(_Model):
    rules: tuple[Rule, ...] = ()
    default: Name = "acknowledge"


class Store(_Model):
    url: str = "sqlite+aiosqlite:///var/mailport.db"


class Node(_Model):
    shards: int = Field(default=2, ge=1, le=64)
    data_dir: Path = Path("var")


class Cluster(_Model):
    """How this node finds the others. `local` (the default) is one node on its own, with
    an embedded Ray; `etcd` joins a Ray cluster and coordinates through etcd."""

    coordinator: Literal["local", "etcd"] = "local"
    etcd: list[str] = Field(default_factory=list)
    """etcd members, `host:port` each (IPv4 addresses when more than one)."""
    prefix: str = Field(default="/mailport", pattern=r"^/[\w./-]*$")
    """Where in etcd this cluster keeps its keys: one prefix per mailport cluster."""
    lease_ttl: int = Field(default=5, ge=1, le=60)
    """Seconds a node's membership outlives its last word to etcd (refreshed every TTL/3);
    a lost node's connections move after about this long."""
    node_name: str | None = Field(default=None, pattern=_NAME)
    """This node's name in the cluster; default: the host name."""
    zone: str | None = None
    capacity: int | None = Field(default=None, ge=1)
    """The most connection weight this node takes; None: its share, whatever that is."""
    ray_address: str = "auto"
    """The Ray cluster to join (`ray start --head` prints it); `auto` finds the local one."""
    ray_node: str | None = None
    """Place this node's actors on the Ray node with this custom resource (or this node
    id); default: the Ray node this process runs on."""
    standby: int = Field(default=2, ge=0, le=32)
    """Inbound actors kept started and idle, to take over a lost node's mailboxes at once
    rather than after an actor's 1-2 s start; each is an idle process (about 100 MB)."""

    @model_validator(mode="after")
    def _endpoints(self) -> Cluster:
        if self.coordinator == "etcd" and not self.etcd:
            raise ValueError("the etcd coordinator needs its endpoints (cluster.etcd)")
        return self


ACKNOWLEDGE = Application(
    name="acknowledge",
    handler="mailport.actors.acknowledge:acknowledge",
    address="support@mailport.localhost",
)


class Settings(_Model):
    node: Node = Node()
    cluster: Cluster = Cluster()
    store: Store = Store()
    inbound: tuple[Inbound, ...] = (SmtpListenerInbound(kind="smtp-listener", name="mx"),)
    outbound: tuple[Outbound, ...] = (MaildirOutbound(kind="maildir", name="outbox"),)
    applications: tuple[Application, ...] = (ACKNOWLEDGE,)
    routing: Routing = Routing()
    automatic_replies_per_sender: int = Field(default=20, ge=0)
    """Automatic replies one sender may get a day (RFC 3834 section 2): past it, the message
    is recorded as unanswerable, so two autoresponders cannot keep each other busy."""
    outbound_lifetime: float = Field(default=5 * 86400.0, gt=0)
    """Seconds a message may stay deferred before it fails (Postfix's default: 5 days)."""

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems = reference_errors(self.model_dump(mode="python"))
        if problems:
            raise ValueError(problems[0][1])
        return self

    def application(self, name: str) -> Application:
        return next(a for a in self.applications if a.name == name)


Location = tuple[str | int, ...]


def reference_errors(data: Any) -> list[tuple[Location, str]]:
    """What one field cannot know alone: names used twice, and routing to applications
    that are not configured. Works on the raw document, so the loader can point at the
    line of each, beside the field errors."""
    if not isinstance(data, dict):
        return []
    problems: list[tuple[Location, str]] = []
    names: dict[str, set[str]] = {}
    for section in ("inbound", "outbound", "applications"):
        entries = data.get(section)
        default = ["acknowledge"] if section == "applications" else []
        if not isinstance(entries, list | tuple):
            names[section] = set(default) if entries is None else set()
            continue
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str):
                if name in seen:
                    problems.append(((section, i, "name"), f"the name {name!r} is used twice"))
                seen.add(name)
        names[section] = seen
    if isinstance(data.get("outbound"), list | tuple) and not data["outbound"]:
        problems.append((("outbound",), "at least one outbound connection is needed"))
    routing = data.get("routing")
    if not isinstance(routing, dict):
        routing = {}
    wanted: list[tuple[Location, Any]] = [
        (("routing", "default"), routing.get("default", "acknowledge"))
    ]
    rules = routing.get("rules")
    if isinstance(rules, list | tuple):
        wanted += [
            (("routing", "rules", i, "application"), r.get("application"))
            for i, r in enumerate(rules)
            if isinstance(r, dict)
        ]
    for loc, name in wanted:
        if isinstance(name, str) and name not in names["applications"]:
            problems.append((loc, f"routing names application {name!r}, which is not configured"))
    return problems
