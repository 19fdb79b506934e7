"""Vector stores: create (with files), read, modify, list, delete; attaching files.

Ingestion happens in the background (``assistd.retrieval.ingestion``): attaching a file only
writes its row ``in_progress`` and wakes the worker once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistd import clock
from assistd.errors import not_found
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.vector_stores import (
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
    VectorStoreObject,
)
from assistd.retrieval.chunking import resolve_chunking_strategy
from assistd.retrieval.index import ChunkIndex
from assistd.retrieval.ingestion import IngestionWorker
from assistd.services.listing import list_response
from assistd.services.references import require_files
from assistd.store import vector_store_files, vector_stores
from assistd.store.database import Connection, Database
from assistd.store.records import VectorStore, VectorStoreFile
from assistd.store.repository import PageQuery
from assistd.store.vector_store_files import FileKey


@dataclass(frozen=True)
class FileEntry:
    """A file to attach, with its resolved chunking strategy (wire form) and attributes."""

    file_id: str
    chunking_strategy: dict[str, Any]
    attributes: dict[str, Any]


async def require_store(conn: Connection, project: str, vector_store_id: str) -> VectorStore:
    store = await vector_stores.get_for_project(conn, project, vector_store_id)
    if store is None:
        raise not_found("vector store", vector_store_id)
    return store


async def attach_files(
    conn: Connection,
    project: str,
    vector_store_id: str,
    entries: Sequence[FileEntry],
    *,
    chunk_index: ChunkIndex | None,
    batch_id: str | None = None,
) -> list[VectorStoreFile]:
    """Attach ``entries`` (files already checked) in progress and return them.

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
    replaced = await vector_store_files.remove_from_store(
        conn, vector_store_id, [entry.file_id for entry in unique]
    )
    if chunk_index is not None:
        for file_id in replaced:
            await chunk_index.delete(conn, vector_store_id=vector_store_id, file_id=file_id)
    attached = [
        vector_store_files.new_file(
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
    await vector_store_files.add_many(conn, attached)
    await vector_stores.touch(conn, [vector_store_id], now)
    return attached


async def detach_files(
    conn: Connection, file_ids: Sequence[str], chunk_index: ChunkIndex | None
) -> list[FileKey]:
    """Remove deleted files from every store they were in (rows first, then chunks)."""
    gone = await vector_store_files.remove_everywhere(conn, file_ids)
    if chunk_index is not None:
        for vector_store_id, file_id in gone:
            await chunk_index.delete(conn, vector_store_id=vector_store_id, file_id=file_id)
    return gone


async def store_objects(
    conn: Connection, stores: Sequence[VectorStore]
) -> dict[str, VectorStoreObject]:
    tallies = await vector_stores.tally_stores(conn, [s.id for s in stores])
    now = clock.now()
    return {s.id: vector_stores.store_to_wire(s, tallies[s.id], now) for s in stores}


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
            store = vector_stores.new_store(
                project,
                name=request.name,
                description=request.description,
                metadata=request.metadata,
                expires_after=expires_after,
                now=clock.now(),
            )
            await vector_stores.create(conn, store)
            entries = [FileEntry(f, strategy, {}) for f in file_ids]
            await attach_files(conn, project, store.id, entries, chunk_index=self.chunk_index)
            made = await store_objects(conn, [store])
        if file_ids:
            self.ingestion.wake()
        return made[store.id]

    async def get(self, project: str, vector_store_id: str) -> VectorStoreObject:
        async with self.db.read() as conn:
            store = await require_store(conn, project, vector_store_id)
            return (await store_objects(conn, [store]))[vector_store_id]

    async def modify(
        self, project: str, vector_store_id: str, request: ModifyVectorStoreRequest
    ) -> VectorStoreObject:
        async with self.db.write() as conn:
            store = await require_store(conn, project, vector_store_id)
            changes: dict[str, Any] = {}
            if request.name is not None:
                changes["name"] = request.name
            if request.metadata is not None:
                changes["metadata"] = request.metadata
            if "expires_after" in request.model_fields_set:
                policy = request.expires_after.model_dump() if request.expires_after else None
                changes["expires_after"] = policy
                changes["expires_at"] = vector_stores.expiry(policy, store.last_active_at)
            await vector_stores.patch(conn, project, vector_store_id, **changes)
            return (await store_objects(conn, [store.but(**changes)]))[vector_store_id]

    async def list(self, project: str, query: PageQuery) -> ListResponse[VectorStoreObject]:
        async with self.db.read() as conn:
            page = await vector_stores.list_page(conn, project, query)
            made = await store_objects(conn, page.rows)
        return list_response(page, lambda s: made[s.id])

    async def delete(self, project: str, vector_store_id: str) -> DeletedResponse:
        async with self.db.write() as conn:
            await require_store(conn, project, vector_store_id)
            # Rows before chunks (see IngestionWorker._complete).
            file_ids = await vector_stores.delete(conn, project, vector_store_id)
            if self.chunk_index is not None:
                await self.chunk_index.delete(conn, vector_store_id=vector_store_id)
        self.ingestion.abandon([(vector_store_id, file_id) for file_id in file_ids])
        return DeletedResponse(id=vector_store_id, object="vector_store.deleted")
