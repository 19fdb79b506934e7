"""Assistants: the queries services and the executor use, returning typed records."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from assistd import clock, ids
from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import Assistant, JsonObject
from assistd.store.repository import Page, PageQuery, RecordRepository

_repo = RecordRepository(tables.assistants, "assistant", Assistant)


async def create(
    conn: Connection,
    project: str,
    *,
    model: str,
    name: str | None,
    description: str | None,
    instructions: str | None,
    tools: list[JsonObject],
    tool_resources: JsonObject | None,
    metadata: dict[str, str],
    temperature: float | None,
    top_p: float | None,
    response_format: Any,
    reasoning_effort: str | None,
) -> Assistant:
    """Store a new assistant (a fresh id, created now) and return it."""
    assistant_id = ids.new_id("assistant")
    assistant = Assistant(
        id=assistant_id,
        sort_key=ids.key_of_own(assistant_id, "assistant"),
        project=project,
        created_at=clock.now(),
        model=model,
        name=name,
        description=description,
        instructions=instructions,
        tools=tools,
        tool_resources=tool_resources,
        metadata=metadata,
        temperature=temperature,
        top_p=top_p,
        response_format=response_format,
        reasoning_effort=reasoning_effort,
    )
    await _repo.add(conn, assistant)
    return assistant


async def get_for_project(conn: Connection, project: str, assistant_id: str) -> Assistant | None:
    return await _repo.get(conn, project, assistant_id)


async def patch(conn: Connection, assistant: Assistant, **changes: Any) -> Assistant:
    """Write ``changes`` (column → value) to ``assistant``; returns it as it now is."""
    await _repo.patch(conn, assistant.project, assistant.id, **changes)
    return assistant.but(**changes)


async def list_page(conn: Connection, project: str, query: PageQuery) -> Page[Assistant]:
    return await _repo.page(conn, [tables.assistants.c.project == project], query)


async def delete(conn: Connection, project: str, assistant_id: str) -> bool:
    """Remove the assistant; False when the project has none with that id."""
    return await _repo.remove(conn, project, assistant_id)


# --- used by the executor and tools/


async def tool_resources_of(conn: Connection, assistant_id: str) -> JsonObject | None:
    """The assistant's ``tool_resources`` (None when it has none, or is gone)."""
    assistants = tables.assistants
    value = await conn.scalar(
        sa.select(assistants.c.tool_resources).where(assistants.c.id == assistant_id)
    )
    return value if isinstance(value, dict) else None
