"""Messages: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from assistd import clock, ids
from assistd.store import prepared, run_steps, tables
from assistd.store.database import Connection
from assistd.store.prepared import param, params, prefixed, row_params, setting
from assistd.store.records import JsonObject, Message, RunStep
from assistd.store.repository import Page, PageQuery, RecordRepository

_table = tables.messages
_repo = RecordRepository(_table, "message", Message)


def new(
    project: str,
    thread_id: str,
    *,
    role: str,
    content: list[JsonObject],
    attachments: list[JsonObject],
    metadata: dict[str, str],
) -> Message:
    """A message as a client adds it (complete on arrival, of no run), not stored yet."""
    message_id = ids.new_id("message")
    now = clock.now()
    return Message(
        id=message_id,
        sort_key=ids.key_of_own(message_id, "message"),
        project=project,
        created_at=now,
        thread_id=thread_id,
        role=role,
        status="completed",
        content=content,
        attachments=attachments,
        metadata=metadata,
        assistant_id=None,
        run_id=None,
        incomplete_details=None,
        completed_at=now,
        incomplete_at=None,
    )


async def add(conn: Connection, message: Message) -> Message:
    """Store a new message (from ``new``, or the executor's); returns it."""
    await _repo.add(conn, message)
    return message


async def get_in_thread(
    conn: Connection, project: str, thread_id: str, message_id: str
) -> Message | None:
    return await _repo.get(conn, project, message_id, _table.c.thread_id == thread_id)


async def patch(conn: Connection, message: Message, **changes: Any) -> Message:
    """Write ``changes`` (column → value) to ``message``; returns it as it now is."""
    await _repo.patch(conn, message.project, message.id, **changes)
    return message.but(**changes)


async def list_page(
    conn: Connection,
    project: str,
    thread_id: str,
    query: PageQuery,
    *,
    run_id: str | None = None,
) -> Page[Message]:
    """A page of the thread's messages, only those ``run_id`` made when it is given."""
    where = [_table.c.project == project, _table.c.thread_id == thread_id]
    if run_id is not None:
        where.append(_table.c.run_id == run_id)
    return await _repo.page(conn, where, query)


async def delete(conn: Connection, project: str, message_id: str) -> bool:
    return await _repo.remove(conn, project, message_id)


async def delete_for_thread(conn: Connection, project: str, thread_id: str) -> None:
    """Remove every message of the thread (before the thread itself goes)."""
    await conn.execute(
        sa.delete(_table).where(_table.c.thread_id == thread_id, _table.c.project == project)
    )


# --- used by the executor and tools/


async def start(conn: Connection, message: Message) -> None:
    """Store a message the run begins writing."""
    await _repo.add(conn, message)


async def start_with_step(conn: Connection, step: RunStep, message: Message) -> None:
    """Store a message the run begins writing and its ``message_creation`` step. On
    PostgreSQL that is one statement, atomic by itself: in ``Database.write_one`` one
    round trip instead of four (BEGIN, two INSERTs, COMMIT) between the model's first
    token and the client's."""
    if conn.dialect.name != "postgresql":
        await run_steps.start(conn, step)
        await start(conn, message)
        return
    values = prefixed(step.values(), "s_") | prefixed(message.values(), "m_")
    await prepared.execute(conn, _starting_with_step(), values)


async def drop_with_step(conn: Connection, step: RunStep, message: Message) -> None:
    """Remove a message ``start_with_step`` stored that its run never wrote to (stored
    ahead of the model's answer, which then had no text): it was never announced."""
    await _repo.remove(conn, message.project, message.id)
    await run_steps.drop(conn, step)


@functools.cache
def _starting_with_step() -> sa.Insert:
    step = sa.insert(tables.run_steps).values(row_params(tables.run_steps, "s_")).cte("opened_step")
    return sa.insert(_table).values(row_params(_table, "m_")).add_cte(step)


# What save_ending stores: how a message ended, its final content and their timestamps.
ENDING = ("status", "content", "completed_at", "incomplete_at", "incomplete_details")


async def save_ending(conn: Connection, message: Message) -> None:
    """Store how ``message`` ended (``ENDING``)."""
    values = {column: getattr(message, column) for column in ENDING}
    await prepared.execute(conn, _saving(ENDING), params(values, id=message.id))


async def end_with_step(conn: Connection, message: Message, step: RunStep) -> None:
    """Store how a message and its ``message_creation`` step ended (``save_ending``)."""
    await save_ending(conn, message)
    await run_steps.save_ending(conn, step)


async def save_content(conn: Connection, message_id: str, content: list[JsonObject]) -> None:
    await conn.execute(_saving(("content",)), params({"content": content}, id=message_id))


async def save_streamed(conn: Connection, contents: Mapping[str, list[JsonObject]]) -> None:
    """Keep the content streamed so far of messages still being written (message id →
    content); one that ended meanwhile keeps its final content."""
    if contents:
        await conn.execute(
            _saving_streamed(),
            [{"p_id": key, "p_content": content} for key, content in contents.items()],
        )


@functools.cache
def _saving_streamed() -> sa.Update:
    messages = tables.messages
    return (
        sa.update(messages)
        .where(messages.c.id == param(messages, "id"), messages.c.status == "in_progress")
        .values(setting(messages, ("content",)))
    )


@functools.cache
def _saving(columns: tuple[str, ...]) -> sa.Update:
    messages = tables.messages
    return (
        sa.update(messages)
        .where(messages.c.id == param(messages, "id"))
        .values(setting(messages, columns))
    )


async def in_thread(conn: Connection, thread_id: str) -> list[Message]:
    """Every message of the thread, oldest first."""
    rows = await prepared.execute(conn, _in_thread(), {"p_thread_id": thread_id})
    return [Message.from_row(row) for row in rows]


@functools.cache
def _in_thread() -> sa.Select[Any]:
    messages = tables.messages
    return (
        sa.select(messages)
        .where(messages.c.thread_id == param(messages, "thread_id"))
        .order_by(messages.c.sort_key, messages.c.id)
    )


async def attachments_in_thread(conn: Connection, thread_id: str) -> list[list[JsonObject]]:
    """The attachments of each message of the thread, oldest first."""
    messages = tables.messages
    result = await conn.execute(
        sa.select(messages.c.attachments)
        .where(messages.c.thread_id == thread_id)
        .order_by(messages.c.sort_key, messages.c.id)
    )
    return [list(attachments or []) for (attachments,) in result]


async def of_run(conn: Connection, run_id: str) -> list[Message]:
    """The messages a run wrote."""
    messages = tables.messages
    result = await conn.execute(sa.select(messages).where(messages.c.run_id == run_id))
    return [Message.from_row(dict(r)) for r in result.mappings()]
