"""Errors said plainly: an operator reads them in `mailport status` and the alarms."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError


def described(exc: BaseException) -> str:
    """`OperationalError: unable to open database file`, not SQLAlchemy's SQL and links."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {exc}"
