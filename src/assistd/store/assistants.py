"""Assistants: the queries services and the executor use, returning typed records."""

from __future__ import annotations

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import Assistant
from assistd.store.repository import RecordRepository

_repo = RecordRepository(tables.assistants, "assistant", Assistant)


async def get_for_project(conn: Connection, project: str, assistant_id: str) -> Assistant | None:
    return await _repo.get(conn, project, assistant_id)
