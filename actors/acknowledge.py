"""The built-in application: answer every message with its ticket number."""

from __future__ import annotations

from mailport.actors.application import ApplicationContext


def acknowledge(ctx: ApplicationContext) -> None:
    ctx.reply(
        f"Thank you for your message. We have received it as ticket {ctx.ticket} "
        "and will answer as soon as we can.\n\n"
        f"Please keep {ctx.ticket} in the subject if you write again."
    )
