"""Fresh, empty databases on each backend the store runs on, for tests that take `backend`
as a parameter: a file for SQLite, a new database on the session's PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.servers.postgres import Postgres

BACKENDS = ("sqlite", "postgresql")


def new_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """The URL of an empty database; PostgreSQL is started only for tests that ask for it."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{directory / f'store-{uuid.uuid4().hex[:8]}.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.url(server.new_database())
