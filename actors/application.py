"""What an application sees: one context argument with the message and what it may do.

An application is `module:function` taking an ApplicationContext, plain or async. What it
asks to send is collected here and queued by the router in the same transaction that marks
the message processed, so a crash never leaves a reply half-sent or sent twice."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from mailport.config.handlers import resolve, unresolvable
from mailport.config.models import Application
from mailport.mail.compose import OutboundMessage
from mailport.mail.message import Address, ParsedMessage
from mailport.mail.reply import Unanswerable, reply_to

Handler = Callable[["ApplicationContext"], Awaitable[None] | None]


@dataclass
class ApplicationContext:
    message: ParsedMessage
    raw: bytes
    connection: str
    application: str
    address: Address
    """The address the application sends from."""
    dedupe_key: str
    outbox: list[OutboundMessage] = field(default_factory=list)
    unanswerable: str | None = None

    @property
    def ticket(self) -> str:
        """A ticket number that is the same however often this message is processed."""
        return "MP-" + hashlib.sha256(self.dedupe_key.encode()).hexdigest()[:10].upper()

    def reply(
        self,
        text: str,
        html: str | None = None,
        *,
        reply_all: bool = False,
        automatic: bool = True,
        insist: bool = False,
    ) -> None:
        """Queue a reply; a message that cannot be answered is recorded as unanswerable.
        automatic=False for a person's answer relayed by the application: it is then not
        marked Auto-Submitted (RFC 3834), so the customer's autoresponder may answer it.
        insist=True answers automatic mail (list mail, say) that is otherwise left alone;
        the per-sender limit on automatic replies holds all the same."""
        try:
            self.outbox.append(
                reply_to(
                    self.message,
                    from_=self.address,
                    text=text,
                    html=html,
                    reply_all=reply_all,
                    automatic=automatic,
                    insist=insist,
                )
            )
        except Unanswerable as exc:
            self.unanswerable = str(exc)

    def send(self, message: OutboundMessage) -> None:
        self.outbox.append(message)


def load_handler(spec: str) -> Handler:
    return resolve(spec)


def unloadable(applications: Iterable[Application]) -> list[str]:
    """Why each application whose handler cannot be loaded cannot be, one line each."""
    return [
        f"applications[{i}].{field}: {app.name}: {problem}"
        for i, app in enumerate(applications)
        for field, spec in (("handler", app.handler), ("receipt_handler", app.receipt_handler))
        if spec is not None and (problem := unresolvable(spec)) is not None
    ]


async def run_handler(handler: Handler, context: ApplicationContext) -> None:
    result = handler(context)
    if inspect.isawaitable(result):
        await result
