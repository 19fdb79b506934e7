"""Files: upload (bounded), read, list, delete, download, and expiry."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

from assistd import clock, ids
from assistd.errors import InvalidRequestError, PayloadTooLargeError, not_found
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.files import UPLOAD_PURPOSES, FileObject
from assistd.retrieval.index import ChunkIndex
from assistd.services.listing import list_response
from assistd.services.vector_stores import detach_files
from assistd.store import files
from assistd.store.blobs import BlobStore
from assistd.store.database import Database
from assistd.store.records import File
from assistd.store.repository import PageQuery

logger = logging.getLogger("assistd.files")

EXPIRY_MIN_SECONDS = 3600
EXPIRY_MAX_SECONDS = 30 * 24 * 3600


@dataclass
class Upload:
    """An upload as the HTTP layer parsed it from the multipart form."""

    filename: str
    content_type: str | None
    data: BinaryIO
    purpose: str | None
    expires_anchor: str | None = None
    expires_seconds: str | None = None


def to_wire(file: File) -> FileObject:
    return FileObject(
        id=file.id,
        bytes=file.bytes,
        created_at=file.created_at,
        expires_at=file.expires_at,
        filename=file.filename,
        purpose=file.purpose,
        status=file.status,
        status_details=file.status_details,
    )


# C0 controls and DEL: a NUL cannot be stored in PostgreSQL, and none of them is ever
# meant in a name a user would recognise.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(sent: str) -> str:
    """The name a File shows: the last path component, without control characters.

    Blobs are stored under the file's id, never under this name, so it cannot reach the
    file system; it is tidied because it is shown back to users and stored in the database.
    """
    base = sent.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return _CONTROLS.sub("", base)


def too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"File is too large. The maximum size of an uploaded file is {limit} bytes.",
        param="file",
        code="file_too_large",
    )


def _validate_purpose(purpose: str | None) -> str:
    if not purpose:
        raise InvalidRequestError(
            "Missing required parameter: 'purpose'.",
            param="purpose",
            code="missing_required_parameter",
        )
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequestError(
            f"Invalid value for 'purpose': '{purpose[:64]}'. Supported values are: "
            + ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
            + ".",
            param="purpose",
            code="invalid_value",
        )
    return purpose


def _expiry(upload: Upload, created_at: int) -> int | None:
    if upload.expires_anchor is None and upload.expires_seconds is None:
        return None
    if upload.expires_anchor != "created_at":
        raise InvalidRequestError(
            "Invalid value for 'expires_after.anchor': expected 'created_at'.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    try:
        seconds = int(upload.expires_seconds or "")
    except ValueError:
        seconds = -1
    if not EXPIRY_MIN_SECONDS <= seconds <= EXPIRY_MAX_SECONDS:
        raise InvalidRequestError(
            f"Invalid value for 'expires_after.seconds': expected an integer between "
            f"{EXPIRY_MIN_SECONDS} and {EXPIRY_MAX_SECONDS}.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return created_at + seconds


class FileService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        max_bytes: int,
        chunk_index: ChunkIndex | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.chunk_index = chunk_index

    async def _get(self, project: str, file_id: str) -> File:
        async with self.db.read() as conn:
            file = await files.get_live(conn, project, file_id)
        if file is None:
            raise not_found("file", file_id)
        return file

    async def create(self, project: str, upload: Upload) -> FileObject:
        purpose = _validate_purpose(upload.purpose)
        created_at = clock.now()
        expires_at = _expiry(upload, created_at)
        filename = safe_filename(upload.filename or "")
        if not filename:
            raise InvalidRequestError(
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        file_id = ids.new_id("file")
        stored = await self.blobs.put(file_id, upload.data)
        if stored.size > self.max_bytes:
            await self.blobs.delete(file_id)
            raise too_large(self.max_bytes)
        file = files.new_file(
            project,
            file_id,
            filename,
            purpose,
            stored,
            content_type=upload.content_type,
            expires_at=expires_at,
            created_at=created_at,
        )
        try:
            async with self.db.write() as conn:
                await files.create(conn, file)
        except BaseException:
            await self.blobs.delete(file_id)
            raise
        return to_wire(file)

    async def get(self, project: str, file_id: str) -> FileObject:
        return to_wire(await self._get(project, file_id))

    async def list(
        self, project: str, query: PageQuery, purpose: str | None = None
    ) -> ListResponse[FileObject]:
        async with self.db.read() as conn:
            page = await files.list_live_page(conn, project, query, purpose=purpose)
        return list_response(page, to_wire)

    async def delete(self, project: str, file_id: str) -> DeletedResponse:
        await self._get(project, file_id)
        async with self.db.write() as conn:
            if not await files.delete(conn, project, file_id):
                raise not_found("file", file_id)
            # A deleted file leaves every vector store it was in (an ingestion still running
            # finds its row gone and stores nothing).
            await detach_files(conn, [file_id], self.chunk_index)
        await self.blobs.delete(file_id)
        return DeletedResponse(id=file_id, object="file")

    async def content(self, project: str, file_id: str) -> tuple[FileObject, AsyncIterator[bytes]]:
        file = await self._get(project, file_id)
        return to_wire(file), await self.blobs.open(file_id)

    async def purge_expired(self) -> int:
        """Delete expired files and their blobs; returns how many went."""
        async with self.db.write() as conn:
            gone = await files.delete_expired(conn)
            await detach_files(conn, gone, self.chunk_index)
        for file_id in gone:
            await self.blobs.delete(file_id)
        if gone:
            logger.info("purged %d expired files", len(gone))
        return len(gone)
