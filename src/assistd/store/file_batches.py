"""Vector store file batches. Only ``cancelled`` is ever stored over ``in_progress``: the
rest of a batch's status follows from its files (``vector_stores.batch_status``)."""

from __future__ import annotations

import sqlalchemy as sa

from assistd import ids
from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import FileBatch
from assistd.store.repository import RecordRepository

batches = tables.vector_store_file_batches

_repo = RecordRepository(batches, "file_batch", FileBatch)


def new_batch(project: str, vector_store_id: str, *, now: int) -> FileBatch:
    batch_id = ids.new_id("file_batch")
    return FileBatch(
        id=batch_id,
        sort_key=ids.key_of_own(batch_id, "file_batch"),
        project=project,
        created_at=now,
        vector_store_id=vector_store_id,
        status="in_progress",
    )


async def create(conn: Connection, batch: FileBatch) -> None:
    await _repo.add(conn, batch)


async def get_in_store(
    conn: Connection, project: str, vector_store_id: str, batch_id: str
) -> FileBatch | None:
    return await _repo.get(conn, project, batch_id, batches.c.vector_store_id == vector_store_id)


async def set_status(conn: Connection, project: str, batch_id: str, status: str) -> None:
    await _repo.patch(conn, project, batch_id, status=status)


async def remove_all(conn: Connection, vector_store_id: str) -> None:
    """Remove every batch of a store."""
    await conn.execute(sa.delete(batches).where(batches.c.vector_store_id == vector_store_id))
