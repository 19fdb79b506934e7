"""The thread lock: no new run and no new message while a run on the thread is active."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd.errors import not_found
from assistd.protocol.runs import ACTIVE_STATUSES
from assistd.store import tables


async def lock_thread(conn: AsyncConnection, project: str, thread_id: str) -> None:
    """Lock the thread row for this transaction (a no-op lock on SQLite, whose writers
    are serialised anyway); 404 if it is not the caller's."""
    threads = tables.threads
    result = await conn.execute(
        sa.select(threads.c.id)
        .where(threads.c.id == thread_id, threads.c.project == project)
        .with_for_update()
    )
    if result.first() is None:
        raise not_found("thread", thread_id)


async def active_run(conn: AsyncConnection, thread_id: str) -> str | None:
    runs = tables.runs
    result = await conn.execute(
        sa.select(runs.c.id).where(
            runs.c.thread_id == thread_id, runs.c.status.in_(ACTIVE_STATUSES)
        )
    )
    found = result.first()
    return str(found[0]) if found is not None else None
