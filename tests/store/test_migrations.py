"""Migrations build exactly the schema the code declares, on every database."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from assistd.config import Settings
from assistd.store.database import Database
from assistd.store.tables import UNDECLARED_SEARCH_OBJECTS, metadata


def _declared(name: str | None, _type: str, _parents: Any) -> bool:
    # Keyword indexes exist on one dialect each (FTS5 tables, a tsvector column and its GIN
    # index); metadata shared by both dialects cannot declare them, so they are left out.
    return name not in UNDECLARED_SEARCH_OBJECTS


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": _declared}
    )
    return list(compare_metadata(context, metadata))


def test_migrations_match_declared_tables(backend: Settings) -> None:
    async def check() -> list[Any]:
        db = Database(backend.resolved_database_url)
        try:
            await db.migrate()
            await db.migrate()  # idempotent
            async with db.read() as conn:
                return await conn.run_sync(_diff)
        finally:
            await db.dispose()

    assert asyncio.run(check()) == []
