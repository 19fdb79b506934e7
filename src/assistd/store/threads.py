"""Threads: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import JsonObject

# --- used by the executor and tools/


async def tool_resources_of(conn: Connection, thread_id: str) -> JsonObject | None:
    """The thread's ``tool_resources`` (None when it has none, or is gone)."""
    threads = tables.threads
    value = await conn.scalar(sa.select(threads.c.tool_resources).where(threads.c.id == thread_id))
    return value if isinstance(value, dict) else None
