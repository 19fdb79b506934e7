"""Vector store files and file batches: attach, read, list, update attributes, remove,
parsed content; batches create, read, cancel and list their files."""

from __future__ import annotations

from assistd import clock
from assistd.errors import InvalidRequestError, NotFoundError, not_found
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
from assistd.retrieval.ingestion import IngestionWorker
from assistd.services.listing import list_response
from assistd.services.references import require_files
from assistd.services.vector_stores import FileEntry, attach_files, require_store
from assistd.store import file_batches, vector_store_files, vector_stores
from assistd.store.database import Connection, Database
from assistd.store.records import FileBatch, VectorStoreFile
from assistd.store.repository import PageQuery


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
        conn: Connection,
        project: str,
        vector_store_id: str,
        entries: list[tuple[str, FileEntry]],
        batch_id: str | None = None,
    ) -> list[VectorStoreFile]:
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
        return vector_stores.file_to_wire(added[0])

    async def _get_file(
        self, conn: Connection, project: str, vector_store_id: str, file_id: str
    ) -> VectorStoreFile:
        await require_store(conn, project, vector_store_id)
        found = await vector_store_files.get(conn, project, vector_store_id, file_id)
        if found is None:
            raise file_not_found(vector_store_id, file_id)
        return found

    async def get(self, project: str, vector_store_id: str, file_id: str) -> VectorStoreFileObject:
        async with self.db.read() as conn:
            found = await self._get_file(conn, project, vector_store_id, file_id)
        return vector_stores.file_to_wire(found)

    async def modify(
        self,
        project: str,
        vector_store_id: str,
        file_id: str,
        request: UpdateVectorStoreFileRequest,
    ) -> VectorStoreFileObject:
        """Replace the file's attributes (``POST .../files/{file_id}``)."""
        attributes = dict(request.attributes or {})
        async with self.db.write() as conn:
            found = await self._get_file(conn, project, vector_store_id, file_id)
            await vector_store_files.set_attributes(conn, vector_store_id, file_id, attributes)
        return vector_stores.file_to_wire(found.but(attributes=attributes))

    async def list(
        self, project: str, vector_store_id: str, query: PageQuery, status: str | None = None
    ) -> ListResponse[VectorStoreFileObject]:
        async with self.db.read() as conn:
            await require_store(conn, project, vector_store_id)
            page = await vector_store_files.list_page(conn, vector_store_id, query, status=status)
        return list_response(page, vector_stores.file_to_wire)

    async def delete(self, project: str, vector_store_id: str, file_id: str) -> DeletedResponse:
        async with self.db.write() as conn:
            await self._get_file(conn, project, vector_store_id, file_id)
            # The row before its chunks: see IngestionWorker._complete for why the order.
            await vector_store_files.remove(conn, vector_store_id, file_id)
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
            await require_store(conn, project, vector_store_id)
            found = await vector_store_files.get_with_text(conn, project, vector_store_id, file_id)
        if found is None:
            raise file_not_found(vector_store_id, file_id)
        # Until the file is parsed (or when it could not be) there is no content to page.
        _, text = found
        return VectorStoreFileContentPage(data=[FileContentPart(text=text)] if text else [])

    # ---- batches ------------------------------------------------------------------------

    async def _get_batch(
        self, conn: Connection, project: str, vector_store_id: str, batch_id: str
    ) -> FileBatch:
        await require_store(conn, project, vector_store_id)
        batch = await file_batches.get_in_store(conn, project, vector_store_id, batch_id)
        if batch is None:
            raise not_found("vector store file batch", batch_id)
        return batch

    async def _batch_object(self, conn: Connection, batch: FileBatch) -> VectorStoreFileBatchObject:
        tallies = await vector_stores.tally_batches(conn, [batch.id])
        return vector_stores.batch_to_wire(batch, tallies[batch.id])

    async def create_batch(
        self, project: str, vector_store_id: str, request: CreateFileBatchRequest
    ) -> VectorStoreFileBatchObject:
        entries = _batch_entries(request)
        batch = file_batches.new_batch(project, vector_store_id, now=clock.now())
        async with self.db.write() as conn:
            await self._attach(conn, project, vector_store_id, entries, batch.id)
            await file_batches.create(conn, batch)
            made = await self._batch_object(conn, batch)
        self.ingestion.wake()
        return made

    async def get_batch(
        self, project: str, vector_store_id: str, batch_id: str
    ) -> VectorStoreFileBatchObject:
        async with self.db.read() as conn:
            batch = await self._get_batch(conn, project, vector_store_id, batch_id)
            return await self._batch_object(conn, batch)

    async def cancel_batch(
        self, project: str, vector_store_id: str, batch_id: str
    ) -> VectorStoreFileBatchObject:
        async with self.db.write() as conn:
            batch = await self._get_batch(conn, project, vector_store_id, batch_id)
            current = await self._batch_object(conn, batch)
            if current.status != "in_progress":
                raise InvalidRequestError(
                    f"Cannot cancel vector store file batch with status '{current.status}'.",
                    code="invalid_value",
                )
            await file_batches.set_status(conn, project, batch_id, "cancelled")
            # A file still in progress has no chunks yet (they are written in the same
            # transaction that completes it), so cancelling it is only a status change.
            stopped = await vector_store_files.cancel_batch(conn, batch_id)
            made = await self._batch_object(conn, batch.but(status="cancelled"))
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
        async with self.db.read() as conn:
            await self._get_batch(conn, project, vector_store_id, batch_id)
            page = await vector_store_files.list_page(
                conn, vector_store_id, query, status=status, batch_id=batch_id
            )
        return list_response(page, vector_stores.file_to_wire)
