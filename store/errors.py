"""Errors said plainly: an operator reads them in `mailport status` and the alarms."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError


def described(exc: BaseException) -> str:
    """`OperationalError: unable to open database file`, not SQLAlchemy's SQL and links."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
        if exc.__cause__ is not None:  # asyncpg's own, under SQLAlchemy's adapted Error
            exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"
