"""Messages: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import JsonObject, Message

# --- used by the executor and tools/


async def start(conn: Connection, message: Message) -> None:
    """Store a message the run begins writing."""
    await conn.execute(sa.insert(tables.messages).values(**message.values()))


async def save_ending(conn: Connection, message: Message) -> None:
    """Store how ``message`` ended: its status, final content and their timestamps."""
    messages = tables.messages
    await conn.execute(
        sa.update(messages)
        .where(messages.c.id == message.id)
        .values(
            status=message.status,
            content=message.content,
            completed_at=message.completed_at,
            incomplete_at=message.incomplete_at,
            incomplete_details=message.incomplete_details,
        )
    )


async def save_content(conn: Connection, message_id: str, content: list[JsonObject]) -> None:
    messages = tables.messages
    await conn.execute(
        sa.update(messages).where(messages.c.id == message_id).values(content=content)
    )


async def in_thread(conn: Connection, thread_id: str) -> list[Message]:
    """Every message of the thread, oldest first."""
    messages = tables.messages
    result = await conn.execute(
        sa.select(messages)
        .where(messages.c.thread_id == thread_id)
        .order_by(messages.c.sort_key, messages.c.id)
    )
    return [Message.from_row(dict(r)) for r in result.mappings()]


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
