"""Vector stores: create (with files), read, modify, list, delete; attaching files.

Ingestion happens in the background (``assistd.executor.ingestion``): attaching a file only
writes its row ``in_progress`` and wakes the worker once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock
from assistd.errors import not_found
from assistd.executor.ingestion import FileKey, IngestionWorker
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.vector_stores import (
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
    VectorStoreObject,
)
from assistd.retrieval.chunking import resolve_chunking_strategy
from assistd.retrieval.index import ChunkIndex
from assistd.services.listing import list_response
from assistd.services.references import require_files
from assistd.store import repos
from assistd.store import vector_stores as rows
from assistd.store.database import Database
from assistd.store.repository import PageQuery, Row


@dataclass(frozen=True)
class FileEntry:
    """A file to attach, with its resolved chunking strategy (wire form) and attributes."""

    file_id: str
    chunking_strategy: dict[str, Any]
    attributes: dict[str, Any]


async def require_store(conn: AsyncConnection, project: str, vector_store_id: str) -> Row:
    row = await repos.vector_stores.get(conn, project, vector_store_id)
    if row is None:
        raise not_found("vector store", vector_store_id)
    return row


async def attach_files(
    conn: AsyncConnection,
    project: str,
    vector_store_id: str,
    entries: Sequence[FileEntry],
    *,
    chunk_index: ChunkIndex | None,
    batch_id: str | None = None,
) -> list[Row]:
    """Insert ``entries`` (files already checked) in progress and return the new rows.

    Attaching a file the store already has starts it over with the new settings: the old
    row and its chunks go in this same transaction, so no search sees both. A worker still
    on the old attach cannot finish it (its row is gone) and drops it at its next renewal.
    """
    now = clock.now()
    first: dict[str, FileEntry] = {}
    for entry in entries:
        # The SDK's upload_and_poll can list one file twice; the first mention counts.
        first.setdefault(entry.file_id, entry)
    unique = list(first.values())
    file_ids = [entry.file_id for entry in unique]
    t = rows.files
    replaced = await conn.execute(
        sa.delete(t)
        .where(t.c.vector_store_id == vector_store_id, t.c.file_id.in_(file_ids))
        .returning(t.c.file_id)
    )
    if chunk_index is not None:
        for (file_id,) in replaced:
            await chunk_index.delete(conn, vector_store_id=vector_store_id, file_id=file_id)
    new_rows: list[Row] = [
        rows.new_file_row(
            project,
            vector_store_id,
            entry.file_id,
            chunking_strategy=entry.chunking_strategy,
            attributes=entry.attributes,
            batch_id=batch_id,
            now=now,
        )
        for entry in unique
    ]
    if new_rows:
        await conn.execute(sa.insert(t), new_rows)
    await rows.touch(conn, [vector_store_id], now)
    return new_rows


async def detach_files(
    conn: AsyncConnection, file_ids: Sequence[str], chunk_index: ChunkIndex | None
) -> list[FileKey]:
    """Remove deleted files from every store they were in (rows first, then chunks)."""
    if not file_ids:
        return []
    t = rows.files
    result = await conn.execute(
        sa.delete(t)
        .where(t.c.file_id.in_(list(file_ids)))
        .returning(t.c.vector_store_id, t.c.file_id)
    )
    gone: list[FileKey] = [(r[0], r[1]) for r in result]
    if chunk_index is not None:
        for vector_store_id, file_id in gone:
            await chunk_index.delete(conn, vector_store_id=vector_store_id, file_id=file_id)
    return gone


async def store_objects(
    conn: AsyncConnection, store_rows: Sequence[Row]
) -> dict[str, VectorStoreObject]:
    tallies = await rows.tally(conn, rows.files.c.vector_store_id, [r["id"] for r in store_rows])
    now = clock.now()
    return {r["id"]: rows.store_to_wire(r, tallies[r["id"]], now) for r in store_rows}


class VectorStoreService:
    def __init__(
        self, db: Database, ingestion: IngestionWorker, chunk_index: ChunkIndex | None
    ) -> None:
        self.db = db
        self.ingestion = ingestion
        self.chunk_index = chunk_index

    async def create(self, project: str, request: CreateVectorStoreRequest) -> VectorStoreObject:
        # Meaningful only with file_ids, but a malformed strategy is refused either way.
        strategy = resolve_chunking_strategy(request.chunking_strategy).to_wire()
        file_ids = request.file_ids or []
        expires_after = request.expires_after.model_dump() if request.expires_after else None
        async with self.db.write() as conn:
            await require_files(
                conn, project, [(f"file_ids[{i}]", f) for i, f in enumerate(file_ids)]
            )
            row = rows.new_store_row(
                project,
                name=request.name,
                description=request.description,
                metadata=request.metadata,
                expires_after=expires_after,
                now=clock.now(),
            )
            await repos.vector_stores.insert(conn, row)
            entries = [FileEntry(f, strategy, {}) for f in file_ids]
            await attach_files(conn, project, row["id"], entries, chunk_index=self.chunk_index)
            made = await store_objects(conn, [row])
        if file_ids:
            self.ingestion.wake()
        return made[row["id"]]

    async def get(self, project: str, vector_store_id: str) -> VectorStoreObject:
        async with self.db.read() as conn:
            row = await require_store(conn, project, vector_store_id)
            return (await store_objects(conn, [row]))[vector_store_id]

    async def modify(
        self, project: str, vector_store_id: str, request: ModifyVectorStoreRequest
    ) -> VectorStoreObject:
        async with self.db.write() as conn:
            row = await require_store(conn, project, vector_store_id)
            changes: dict[str, Any] = {}
            if request.name is not None:
                changes["name"] = request.name
            if request.metadata is not None:
                changes["metadata"] = request.metadata
            if "expires_after" in request.model_fields_set:
                policy = request.expires_after.model_dump() if request.expires_after else None
                changes["expires_after"] = policy
                changes["expires_at"] = rows.expiry(policy, row["last_active_at"])
            await repos.vector_stores.update(conn, project, vector_store_id, changes)
            updated = {**row, **changes}
            return (await store_objects(conn, [updated]))[vector_store_id]

    async def list(self, project: str, query: PageQuery) -> ListResponse[VectorStoreObject]:
        async with self.db.read() as conn:
            page = await repos.vector_stores.page(
                conn, [repos.vector_stores.table.c.project == project], query
            )
            made = await store_objects(conn, page.rows)
        return list_response(page, lambda r: made[r["id"]])

    async def delete(self, project: str, vector_store_id: str) -> DeletedResponse:
        t = rows.files
        async with self.db.write() as conn:
            await require_store(conn, project, vector_store_id)
            # Rows before chunks (see IngestionWorker._complete), children before the store:
            # correct even where the database does not enforce cascades.
            result = await conn.execute(
                sa.delete(t).where(t.c.vector_store_id == vector_store_id).returning(t.c.file_id)
            )
            gone = [(vector_store_id, r[0]) for r in result]
            await conn.execute(
                sa.delete(rows.batches).where(rows.batches.c.vector_store_id == vector_store_id)
            )
            await repos.vector_stores.delete(conn, project, vector_store_id)
            if self.chunk_index is not None:
                await self.chunk_index.delete(conn, vector_store_id=vector_store_id)
        self.ingestion.abandon(gone)
        return DeletedResponse(id=vector_store_id, object="vector_store.deleted")
