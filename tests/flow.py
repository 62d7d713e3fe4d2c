"""Helpers for tests that drive mail through the shared node."""

from __future__ import annotations

import asyncio
import inspect
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import idna

from mailport.config.models import ImapInbound, Pop3Inbound
from mailport.config.secrets import SecretSource
from tests.servers.dovecot import Dovecot


def password_file(dovecot: Dovecot) -> SecretSource:
    path = Path(tempfile.mkdtemp()) / "password"
    path.write_text(dovecot.password + "\n")
    return SecretSource(file=path)


def imap(dovecot: Dovecot, user: str, security: str = "tls", **extra: Any) -> ImapInbound:
    ports = {"none": dovecot.imap_port, "starttls": dovecot.imap_port, "tls": dovecot.imaps_port}
    return ImapInbound(**_mailbox(dovecot, user, "imap", security, ports[security], extra))


def pop3(dovecot: Dovecot, user: str, security: str = "tls", **extra: Any) -> Pop3Inbound:
    ports = {"none": dovecot.pop3_port, "starttls": dovecot.pop3_port, "tls": dovecot.pop3s_port}
    # POP3 has no push: poll often so the tests do not wait.
    extra.setdefault("poll_interval", 0.5)
    return Pop3Inbound(**_mailbox(dovecot, user, "pop3", security, ports[security], extra))


def _mailbox(
    dovecot: Dovecot, user: str, kind: str, security: str, port: int, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": f"{kind}-{user.partition('@')[0]}",  # a connection name has no "@"
        "host": "localhost",
        "port": port,
        "security": security,
        "ca_file": dovecot.tls.ca_cert,
        "username": user,
        "password": password_file(dovecot),
        "timeout": 10,
        **extra,
    }


async def wait_until(
    check: Callable[[], Awaitable[object]] | Callable[[], object], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def stdlib_message(raw: bytes) -> Message:
    """The test's own, independent reading of a message: the stdlib's legacy parser, after
    RFC 5322 section 4.5's obsolete "Name  :" field syntax is read as "Name:"."""
    head, sep, body = (
        raw.partition(b"\n\n") if b"\r\n\r\n" not in raw else raw.partition(b"\r\n\r\n")
    )
    head = re.sub(rb"(?m)^([!-9;-~]+)[ \t]+:", rb"\1:", head)
    return message_from_bytes(head + sep + body, policy=compat32)


def expected_reply_addresses(raw: bytes) -> list[str]:
    """Every usable mailbox (a local part and a dotted domain) of Reply-To, else of From."""
    msg = stdlib_message(raw)
    for header in ("Reply-To", "From"):
        usable = []
        values = [_utf8(v) for k, v in msg.raw_items() if k.lower() == header.lower()]
        # "a@x.com b@y.com" with the commas left out still names two mailboxes.
        values = [
            ", ".join(v.split())
            if all("@" in w for w in v.split()) and not set('<>",') & set(v)
            else v
            for v in values
        ]
        for _name, addr in getaddresses(values):
            local, at, domain = addr.rpartition("@")
            # "Big Bug bb@bug.com", written without angle brackets, means bb@bug.com.
            local = local.split()[-1] if local.split() else local
            addr = f"{local}@{_a_labels(domain)}"
            if at and local and "." in domain and addr.lower() not in usable:
                usable.append(addr.lower())
        if usable:
            return usable
    return []


def _a_labels(domain: str) -> str:
    """SMTP carries a non-ASCII domain in its A-labels (IDNA 2008), where it has them."""
    try:
        return domain if domain.isascii() else idna.encode(domain, uts46=True).decode()
    except idna.IDNAError:
        return domain


def _utf8(value: str) -> str:
    """Raw UTF-8 header bytes (RFC 6532), which compat32 keeps as surrogate escapes."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def is_auto_submitted(raw: bytes) -> bool:
    """The letter of RFC 3834 and RFC 3464/8098: Auto-Submitted other than "no", a null
    reverse path, a report, or bulk and list mail are never answered."""
    msg = stdlib_message(raw)
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    precedence = str(msg.get("Precedence", "")).strip().lower()
    return (
        (bool(auto) and not auto.startswith("no"))
        or str(msg.get("Return-Path", "")).replace(" ", "") == "<>"
        or msg.get_content_type() == "multipart/report"
        or precedence in {"bulk", "junk", "list", "auto_reply"}
        or any(msg.get(h) for h in ("List-Id", "List-Unsubscribe", "List-Post"))
    )


# What mailport may decline beyond that letter, and must then say so: helpdesk heuristics
# for machine senders, list servers, and automatic subjects.
HEURISTIC_REASONS = (
    "sent by a machine",
    "automatic subject",
    "X-MLServer",
    "X-Auto-Response-Suppress",
    "X-Autoreply",
    "X-Autorespond",
)


def msgid(value: str | None) -> str | None:
    if not value:
        return None
    start, end = value.find("<"), value.find(">")
    # RFC 5322 section 4.5.4: comments and spaces inside an obsolete id are not part of it.
    return re.sub(r"\([^()]*\)|\s+", "", value[start : end + 1]) if 0 <= start < end else None
