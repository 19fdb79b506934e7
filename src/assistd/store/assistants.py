"""Assistants: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import JsonObject

# --- used by the executor and tools/


async def tool_resources_of(conn: Connection, assistant_id: str) -> JsonObject | None:
    """The assistant's ``tool_resources`` (None when it has none, or is gone)."""
    assistants = tables.assistants
    value = await conn.scalar(
        sa.select(assistants.c.tool_resources).where(assistants.c.id == assistant_id)
    )
    return value if isinstance(value, dict) else None
