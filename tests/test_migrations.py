"""The schema comes from migrations: what they make is what schema.py describes, on each
backend; databases made before migrations are adopted; nodes may open one at once."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from mailport.store import Store, migrations, schema
from tests.stores import BACKENDS, new_database

HEAD = ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()


def _differences(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), schema.metadata))


async def _state(url: str) -> tuple[list[str], list[Any]]:
    """The revisions the database records, and how its schema differs from schema.py."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            versions = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return [v for (v,) in versions], await conn.run_sync(_differences)
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_database(request, request.param, tmp_path)


def test_the_initial_revision_is_the_head() -> None:
    assert HEAD == migrations.INITIAL


async def test_the_migrated_schema_is_the_one_schema_py_describes(url: str) -> None:
    store = await Store.open(url)
    await store.close()
    assert await _state(url) == ([HEAD], [])


async def test_a_database_made_by_create_all_is_adopted_with_its_rows(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(schema.metadata.create_all)
        await conn.execute(insert(schema.fences).values(connection="c", epoch=7))
    await engine.dispose()

    store = await Store.open(url)
    try:
        assert await store.fence("c", 1) == 7
    finally:
        await store.close()
    assert await _state(url) == ([migrations.INITIAL], [])


async def test_a_database_older_than_create_all_could_adopt_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(schema.fences.create)
    await engine.dispose()
    with pytest.raises(RuntimeError, match=r"lacks alarms, audit, contacts, inbound, outbound,"):
        await Store.open(url)


# One node starting: it waits until all are ready, then opens the store.
_NODE = """
import asyncio, sys, time
from pathlib import Path
from mailport.store import Store
url, ready, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
(ready / sys.argv[4]).touch()
while len(list(ready.iterdir())) < n:
    time.sleep(0.005)
async def main() -> None:
    store = await Store.open(url)
    await store.close()
asyncio.run(main())
"""


async def test_nodes_starting_at_once_on_a_new_database_migrate_it_once(
    url: str, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    nodes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _NODE, url, str(ready), "4", f"n{i}", stderr=PIPE
        )
        for i in range(4)
    ]
    errors = [(await node.communicate())[1].decode() for node in nodes]
    assert [node.returncode for node in nodes] == [0] * 4, "\n".join(errors)
    assert await _state(url) == ([HEAD], [])


async def test_stores_opening_at_once_in_one_process_take_turns(url: str) -> None:
    stores = await asyncio.gather(*(Store.open(url) for _ in range(4)))
    for store in stores:
        await store.close()
    assert await _state(url) == ([HEAD], [])
