"""Threads: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import Thread
from assistd.store.repository import RecordRepository

_repo = RecordRepository(tables.threads, "thread", Thread)


async def get_for_project(conn: Connection, project: str, thread_id: str) -> Thread | None:
    return await _repo.get(conn, project, thread_id)


async def lock(conn: Connection, project: str, thread_id: str) -> bool:
    """Lock the thread row for this transaction (a no-op lock on SQLite, whose writers
    are serialised anyway); False when ``project`` has no such thread."""
    threads = tables.threads
    result = await conn.execute(
        sa.select(threads.c.id)
        .where(threads.c.id == thread_id, threads.c.project == project)
        .with_for_update()
    )
    return result.first() is not None
