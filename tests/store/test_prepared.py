"""``store.prepared.execute``: statements built once give what SQLAlchemy's execution gives.

They run straight on the driver (``sqlite3``, asyncpg's prepared statements) with the SQL
and conversions SQLAlchemy compiled for them, and SQLAlchemy's execution never sees them.
Both databases are checked against reading the same rows through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from assistd.store import prepared, tables, threads, usage
from assistd.store.database import Database
from assistd.store.records import Message
from tests.store_support import database_url, run_on

MESSAGES = tables.messages
INSERT = MESSAGES.insert()
BY_THREAD = sa.select(MESSAGES).where(MESSAGES.c.thread_id == sa.bindparam("p_thread_id"))
CLOSING = (
    sa.update(MESSAGES)
    .where(MESSAGES.c.thread_id == sa.bindparam("p_thread_id"), MESSAGES.c.status == "in_progress")
    .values(status="incomplete", incomplete_details=sa.bindparam("p_details", type_=sa.JSON()))
    .returning(*MESSAGES.c)
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    async def prepare(db: Database) -> None:
        await db.migrate()
        async with db.write() as conn:
            await threads.create(conn, "proj", tool_resources=None, metadata={})
            await conn.execute(sa.update(tables.threads).values(id="thread_1"))

    with database_url(request.param, tmp_path) as value:
        run_on(value, prepare)
        yield value


def message(message_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": message_id,
        "sort_key": 1,
        "project": "proj",
        "created_at": 1_700_000_000,
        "thread_id": "thread_1",
        "role": "assistant",
        "status": "in_progress",
        "content": [{"type": "text", "text": {"value": "é ☃ \u2028", "annotations": []}}],
        "attachments": [],
        "metadata": {"k": "v"},
        "assistant_id": None,
        "run_id": None,
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
    }
    return row | values


def count_executions(db: Database) -> list[str]:
    """Statements SQLAlchemy's execution ran, from now on."""
    seen: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _count(*args: Any) -> None:
        seen.append(args[2])

    return seen


def test_rows_match_sqlalchemy_and_skip_its_execution(url: str) -> None:
    async def scenario(db: Database) -> None:
        seen = count_executions(db)
        async with db.write() as conn:
            await prepared.execute(conn, INSERT, message("msg_a"))
            await prepared.execute(conn, INSERT, message("msg_b", status="completed"))
            rows = await prepared.execute(conn, BY_THREAD, {"p_thread_id": "thread_1"})
            expected = (await conn.execute(BY_THREAD, {"p_thread_id": "thread_1"})).mappings()
            expected_rows = sorted((dict(r) for r in expected), key=lambda row: row["id"])
            closed = await prepared.execute(
                conn, CLOSING, {"p_thread_id": "thread_1", "p_details": {"reason": "x"}}
            )
            fast = sorted(rows, key=lambda row: row["id"])
        # Only the SELECT run through SQLAlchemy for comparison (BEGIN and COMMIT are not
        # cursor executions on either database).
        assert seen == [str(BY_THREAD.compile(dialect=db.engine.dialect))]
        assert fast == expected_rows
        assert fast[0] == message("msg_a")
        assert Message.from_row(fast[1]).metadata == {"k": "v"}
        assert closed.rowcount == 1
        assert [row["id"] for row in closed] == ["msg_a"]
        assert closed.first() == message(
            "msg_a", status="incomplete", incomplete_details={"reason": "x"}
        )

    run_on(url, scenario)


def test_dates_and_upserts_convert_both_ways(url: str) -> None:
    async def scenario(db: Database) -> None:
        day = date(2026, 12, 4)
        for _ in range(2):
            async with db.write() as conn:
                counted = usage.counted("proj", "m", day, prompt_tokens=5, completion_tokens=2)
                await usage.add(conn, counted)
        async with db.read() as conn:
            (row,) = await usage.daily(conn, "proj")
        assert (row.day, row.prompt_tokens, row.completion_tokens, row.requests) == (day, 10, 4, 2)

    run_on(url, scenario)


def test_database_errors_are_sqlalchemys(url: str) -> None:
    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            await prepared.execute(conn, INSERT, message("msg_a"))
        with pytest.raises(sa.exc.IntegrityError):
            async with db.write() as conn:
                await prepared.execute(conn, INSERT, message("msg_a"))
        async with db.read() as conn:
            rows = await prepared.execute(conn, BY_THREAD, {"p_thread_id": "thread_1"})
        assert [row["id"] for row in rows] == ["msg_a"]

    run_on(url, scenario)


def test_expanding_lists_take_sqlalchemys_path(url: str) -> None:
    among = sa.select(MESSAGES.c.id).where(MESSAGES.c.id.in_(sa.bindparam("p_ids", expanding=True)))

    async def scenario(db: Database) -> None:
        async with db.write() as conn:
            for name in ("msg_a", "msg_b", "msg_c"):
                await prepared.execute(conn, INSERT, message(name))
            rows = await prepared.execute(conn, among, {"p_ids": ["msg_a", "msg_c"]})
        assert sorted(row["id"] for row in rows) == ["msg_a", "msg_c"]

    run_on(url, scenario)
