"""Vector store files and file batches: attach, read, list, update attributes, remove,
parsed content; batches create, read, cancel and list their files."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock, ids
from assistd.errors import InvalidRequestError, NotFoundError, not_found
from assistd.executor.ingestion import IngestionWorker
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.vector_stores import (
    CreateFileBatchRequest,
    CreateVectorStoreFileRequest,
    FileContentPart,
    UpdateVectorStoreFileRequest,
    VectorStoreFileBatchObject,
    VectorStoreFileContentPage,
    VectorStoreFileObject,
)
from assistd.retrieval.chunking import resolve_chunking_strategy
from assistd.retrieval.index import ChunkIndex
from assistd.services.listing import list_response
from assistd.services.references import require_files
from assistd.services.vector_stores import FileEntry, attach_files, require_store
from assistd.store import repos
from assistd.store import vector_stores as rows
from assistd.store.database import Database
from assistd.store.repository import PageQuery, Row


def file_not_found(vector_store_id: str, file_id: str) -> NotFoundError:
    return NotFoundError(f"No file found with id '{file_id}' in vector store '{vector_store_id}'.")


def _batch_entries(request: CreateFileBatchRequest) -> list[tuple[str, FileEntry]]:
    """``(param, entry)`` per file: ``file_ids`` share the batch's settings, ``files`` carry
    their own (the batch-level ones are ignored for them, as documented)."""
    if request.file_ids is not None and request.files is not None:
        raise InvalidRequestError(
            "Only one of 'file_ids' or 'files' may be given.", param="files", code="invalid_value"
        )
    if request.files is not None:
        return [
            (
                f"files[{i}].file_id",
                FileEntry(
                    item.file_id,
                    resolve_chunking_strategy(
                        item.chunking_strategy, param=f"files[{i}].chunking_strategy"
                    ).to_wire(),
                    dict(item.attributes or {}),
                ),
            )
            for i, item in enumerate(request.files)
        ]
    if request.file_ids is None:
        raise InvalidRequestError(
            "Missing required parameter: 'file_ids'. Give 'file_ids' or 'files'.",
            param="file_ids",
            code="missing_required_parameter",
        )
    strategy = resolve_chunking_strategy(request.chunking_strategy).to_wire()
    attributes = dict(request.attributes or {})
    return [
        (f"file_ids[{i}]", FileEntry(file_id, strategy, attributes))
        for i, file_id in enumerate(request.file_ids)
    ]


class VectorStoreFileService:
    def __init__(
        self, db: Database, ingestion: IngestionWorker, chunk_index: ChunkIndex | None
    ) -> None:
        self.db = db
        self.ingestion = ingestion
        self.chunk_index = chunk_index

    async def _attach(
        self,
        conn: AsyncConnection,
        project: str,
        vector_store_id: str,
        entries: list[tuple[str, FileEntry]],
        batch_id: str | None = None,
    ) -> list[Row]:
        await require_store(conn, project, vector_store_id)
        await require_files(conn, project, [(param, entry.file_id) for param, entry in entries])
        return await attach_files(
            conn,
            project,
            vector_store_id,
            [entry for _, entry in entries],
            chunk_index=self.chunk_index,
            batch_id=batch_id,
        )

    # ---- files --------------------------------------------------------------------------

    async def create(
        self, project: str, vector_store_id: str, request: CreateVectorStoreFileRequest
    ) -> VectorStoreFileObject:
        entry = FileEntry(
            request.file_id,
            resolve_chunking_strategy(request.chunking_strategy).to_wire(),
            dict(request.attributes or {}),
        )
        async with self.db.write() as conn:
            added = await self._attach(conn, project, vector_store_id, [("file_id", entry)])
        self.ingestion.wake()
        return rows.file_to_wire(added[0])

    async def _get_row(
        self,
        conn: AsyncConnection,
        project: str,
        vector_store_id: str,
        file_id: str,
        *,
        with_text: bool = False,
    ) -> Row:
        await require_store(conn, project, vector_store_id)
        row = await rows.get_file(conn, project, vector_store_id, file_id, with_text=with_text)
        if row is None:
            raise file_not_found(vector_store_id, file_id)
        return row

    async def get(self, project: str, vector_store_id: str, file_id: str) -> VectorStoreFileObject:
        async with self.db.read() as conn:
            return rows.file_to_wire(await self._get_row(conn, project, vector_store_id, file_id))

    async def update(
        self,
        project: str,
        vector_store_id: str,
        file_id: str,
        request: UpdateVectorStoreFileRequest,
    ) -> VectorStoreFileObject:
        attributes = dict(request.attributes or {})
        async with self.db.write() as conn:
            row = await self._get_row(conn, project, vector_store_id, file_id)
            await conn.execute(
                sa.update(rows.files)
                .where(rows.file_key(vector_store_id, file_id))
                .values(attributes=attributes)
            )
        return rows.file_to_wire({**row, "attributes": attributes})

    async def list(
        self, project: str, vector_store_id: str, query: PageQuery, status: str | None = None
    ) -> ListResponse[VectorStoreFileObject]:
        where = [rows.files.c.status == status] if status is not None else []
        async with self.db.read() as conn:
            await require_store(conn, project, vector_store_id)
            page = await rows.page_files(conn, vector_store_id, where, query)
        return list_response(page, rows.file_to_wire)

    async def delete(self, project: str, vector_store_id: str, file_id: str) -> DeletedResponse:
        async with self.db.write() as conn:
            await self._get_row(conn, project, vector_store_id, file_id)
            # The row before its chunks: see IngestionWorker._complete for why the order.
            await conn.execute(sa.delete(rows.files).where(rows.file_key(vector_store_id, file_id)))
            if self.chunk_index is not None:
                await self.chunk_index.delete(
                    conn, vector_store_id=vector_store_id, file_id=file_id
                )
        self.ingestion.abandon([(vector_store_id, file_id)])
        return DeletedResponse(id=file_id, object="vector_store.file.deleted")

    async def content(
        self, project: str, vector_store_id: str, file_id: str
    ) -> VectorStoreFileContentPage:
        async with self.db.read() as conn:
            row = await self._get_row(conn, project, vector_store_id, file_id, with_text=True)
        # Until the file is parsed (or when it could not be) there is no content to page.
        text = row["parsed_text"]
        return VectorStoreFileContentPage(data=[FileContentPart(text=text)] if text else [])

    # ---- batches ------------------------------------------------------------------------

    async def _batch_row(
        self, conn: AsyncConnection, project: str, vector_store_id: str, batch_id: str
    ) -> Row:
        await require_store(conn, project, vector_store_id)
        row = await repos.file_batches.get(
            conn, project, batch_id, repos.file_batches.table.c.vector_store_id == vector_store_id
        )
        if row is None:
            raise not_found("vector store file batch", batch_id)
        return row

    async def _batch_object(self, conn: AsyncConnection, row: Row) -> VectorStoreFileBatchObject:
        tallies = await rows.tally(conn, rows.files.c.batch_id, [row["id"]])
        return rows.batch_to_wire(row, tallies[row["id"]])

    async def create_batch(
        self, project: str, vector_store_id: str, request: CreateFileBatchRequest
    ) -> VectorStoreFileBatchObject:
        entries = _batch_entries(request)
        batch_id = ids.new_id("file_batch")
        async with self.db.write() as conn:
            row: Row = {
                "id": batch_id,
                "sort_key": ids.sort_key_of(batch_id, "file_batch"),
                "project": project,
                "created_at": clock.now(),
                "vector_store_id": vector_store_id,
                "status": "in_progress",
            }
            await self._attach(conn, project, vector_store_id, entries, batch_id)
            await repos.file_batches.insert(conn, row)
            made = await self._batch_object(conn, row)
        self.ingestion.wake()
        return made

    async def get_batch(
        self, project: str, vector_store_id: str, batch_id: str
    ) -> VectorStoreFileBatchObject:
        async with self.db.read() as conn:
            row = await self._batch_row(conn, project, vector_store_id, batch_id)
            return await self._batch_object(conn, row)

    async def cancel_batch(
        self, project: str, vector_store_id: str, batch_id: str
    ) -> VectorStoreFileBatchObject:
        t = rows.files
        async with self.db.write() as conn:
            row = await self._batch_row(conn, project, vector_store_id, batch_id)
            current = await self._batch_object(conn, row)
            if current.status != "in_progress":
                raise InvalidRequestError(
                    f"Cannot cancel vector store file batch with status '{current.status}'.",
                    code="invalid_value",
                )
            await repos.file_batches.update(conn, project, batch_id, {"status": "cancelled"})
            # A file still in progress has no chunks yet (they are written in the same
            # transaction that completes it), so cancelling it is only a status change.
            result = await conn.execute(
                sa.update(t)
                .where(t.c.batch_id == batch_id, t.c.status == "in_progress")
                .values(status="cancelled", worker_id=None, lease_until=None)
                .returning(t.c.vector_store_id, t.c.file_id)
            )
            stopped = [(r[0], r[1]) for r in result]
            made = await self._batch_object(conn, {**row, "status": "cancelled"})
        self.ingestion.abandon(stopped)
        return made

    async def list_batch_files(
        self,
        project: str,
        vector_store_id: str,
        batch_id: str,
        query: PageQuery,
        status: str | None = None,
    ) -> ListResponse[VectorStoreFileObject]:
        where = [rows.files.c.batch_id == batch_id]
        if status is not None:
            where.append(rows.files.c.status == status)
        async with self.db.read() as conn:
            await self._batch_row(conn, project, vector_store_id, batch_id)
            page = await rows.page_files(conn, vector_store_id, where, query)
        return list_response(page, rows.file_to_wire)
