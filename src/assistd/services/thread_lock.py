"""The thread lock: no new run and no new message while a run on the thread is active."""

from __future__ import annotations

from assistd.errors import not_found
from assistd.store import runs, threads
from assistd.store.database import Connection


async def lock_thread(conn: Connection, project: str, thread_id: str) -> None:
    """Lock the thread row for this transaction (a no-op lock on SQLite, whose writers
    are serialised anyway); 404 if it is not the caller's."""
    if not await threads.lock(conn, project, thread_id):
        raise not_found("thread", thread_id)


async def active_run(conn: Connection, thread_id: str) -> str | None:
    return await runs.active_in_thread(conn, thread_id)
