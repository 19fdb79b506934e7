"""Migrations build exactly the schema the code declares, on every database; usage's
shards read as one row, and go back to one on a downgrade."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from assistd.config import Settings
from assistd.store import tables, usage
from assistd.store.database import Database, alembic_config
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


def test_usage_added_over_shards_reads_as_one_row_and_downgrades_to_one(
    backend: Settings,
) -> None:
    async def check() -> None:
        db = Database(backend.resolved_database_url)
        try:
            await db.migrate()
            day = date(2026, 12, 5)
            project = f"proj_{secrets.token_hex(4)}"
            async with db.write() as conn:
                for i in range(40):
                    counted = usage.counted(project, "m", day, prompt_tokens=i, completion_tokens=1)
                    await usage.add(conn, counted)
            async with db.read() as conn:
                shards = await conn.scalar(
                    sa.select(sa.func.count()).where(tables.usage_daily.c.project == project)
                )
                (row,) = await usage.daily(conn, project)
                since = await usage.tokens_since(conn, project, day)
            assert shards is not None
            assert shards > 1  # 40 adds over 16 shards
            assert (row.day, row.model) == (day, "m")
            assert (row.prompt_tokens, row.completion_tokens, row.requests) == (780, 40, 40)
            assert since == 820
            async with db.engine.begin() as conn:
                await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0005"))
                merged = (
                    await conn.execute(
                        sa.text(
                            "SELECT prompt_tokens, completion_tokens, requests FROM usage_daily"
                            " WHERE project = :p"
                        ),
                        {"p": project},
                    )
                ).all()
                assert [tuple(r) for r in merged] == [(780, 40, 40)]
                await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
        finally:
            await db.dispose()

    asyncio.run(check())
