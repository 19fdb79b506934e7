"""Threads: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from assistd import clock, ids
from assistd.store import messages as message_rows
from assistd.store import prepared, tables
from assistd.store import runs as run_rows
from assistd.store.database import Connection
from assistd.store.prepared import param, prefixed, row_params
from assistd.store.records import JsonObject, Message, Run, Thread
from assistd.store.repository import Page, PageQuery, RecordRepository

_repo = RecordRepository(tables.threads, "thread", Thread)


def new(project: str, *, tool_resources: JsonObject | None, metadata: dict[str, str]) -> Thread:
    """A new thread (a fresh id, created now), not stored yet."""
    thread_id = ids.new_id("thread")
    return Thread(
        id=thread_id,
        sort_key=ids.key_of_own(thread_id, "thread"),
        project=project,
        created_at=clock.now(),
        tool_resources=tool_resources,
        metadata=metadata,
    )


async def create(
    conn: Connection,
    project: str,
    *,
    tool_resources: JsonObject | None,
    metadata: dict[str, str],
) -> Thread:
    """Store a new thread (a fresh id, created now) and return it."""
    thread = new(project, tool_resources=tool_resources, metadata=metadata)
    await _repo.add(conn, thread)
    return thread


async def create_with_run(
    conn: Connection, thread: Thread, messages: Sequence[Message], run: Run
) -> None:
    """Store a new thread, its first messages and its run. On PostgreSQL that is one
    statement, atomic by itself: in ``Database.write_one`` one round trip instead of a
    transaction's BEGIN, an INSERT each and COMMIT, on a run's way to its first token."""
    if conn.dialect.name != "postgresql":
        await _repo.add(conn, thread)
        for message in messages:
            await message_rows.add(conn, message)
        await run_rows.add(conn, run)
        return
    values = prefixed(thread.values(), "t_") | prefixed(run.values(), "r_")
    for i, message in enumerate(messages):
        values |= prefixed(message.values(), f"m{i}_")
    await prepared.execute(conn, _creating_with_run(len(messages)), values)


@functools.lru_cache(maxsize=64)
def _creating_with_run(messages: int) -> sa.Insert:
    """The statement of ``create_with_run`` for a thread of ``messages`` messages (the
    thread and each message a data-modifying CTE of the run's INSERT)."""

    ctes = [sa.insert(tables.threads).values(row_params(tables.threads, "t_")).cte("new_thread")]
    ctes += [
        sa.insert(tables.messages)
        .values(row_params(tables.messages, f"m{i}_"))
        .cte(f"new_message_{i}")
        for i in range(messages)
    ]
    return sa.insert(tables.runs).values(row_params(tables.runs, "r_")).add_cte(*ctes)


async def get_for_project(conn: Connection, project: str, thread_id: str) -> Thread | None:
    return await _repo.get(conn, project, thread_id)


async def list_page(conn: Connection, project: str, query: PageQuery) -> Page[Thread]:
    return await _repo.page(conn, [tables.threads.c.project == project], query)


async def patch(conn: Connection, thread: Thread, **changes: Any) -> Thread:
    """Write ``changes`` (column → value) to ``thread``; returns it as it now is."""
    await _repo.patch(conn, thread.project, thread.id, **changes)
    return thread.but(**changes)


async def delete(conn: Connection, project: str, thread_id: str) -> bool:
    """Remove the thread row only (its children are the caller's); False when absent."""
    return await _repo.remove(conn, project, thread_id)


async def lock(conn: Connection, project: str, thread_id: str) -> bool:
    """Lock the thread row for this transaction (a no-op lock on SQLite, whose writers
    are serialised anyway); False when ``project`` has no such thread."""
    result = await conn.execute(_locking(), {"p_id": thread_id, "p_project": project})
    return result.first() is not None


@functools.cache
def _locking() -> sa.Select[Any]:
    threads = tables.threads
    return (
        sa.select(threads.c.id)
        .where(threads.c.id == param(threads, "id"), threads.c.project == param(threads, "project"))
        .with_for_update()
    )


async def lock_for_delete(conn: Connection, project: str, thread_id: str) -> bool:
    """Lock the thread row against new runs and messages (their creation takes ``lock``)
    without blocking writes of rows that reference it (a worker still writing the run's
    message); False when ``project`` has no such thread."""
    threads = tables.threads
    result = await conn.execute(
        sa.select(threads.c.id)
        .where(threads.c.id == thread_id, threads.c.project == project)
        # FOR NO KEY UPDATE on PostgreSQL: conflicts with ``lock``'s FOR UPDATE, not with the
        # key-share locks that inserting a message or step takes.
        .with_for_update(key_share=True)
    )
    return result.first() is not None


# --- used by the executor and tools/


async def tool_resources_of(conn: Connection, thread_id: str) -> JsonObject | None:
    """The thread's ``tool_resources`` (None when it has none, or is gone)."""
    threads = tables.threads
    value = await conn.scalar(sa.select(threads.c.tool_resources).where(threads.c.id == thread_id))
    return value if isinstance(value, dict) else None
