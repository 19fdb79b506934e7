"""The ``files`` row of a stored File object, shared by uploads and generated files.

Uploads (``services.files``) and the files the code interpreter produces (purpose
``assistants_output``, made by the executor) are the same kind of object; building the row
in one place keeps their columns from drifting apart.
"""

from __future__ import annotations

import io
from typing import Any

from assistd import clock, ids
from assistd.store import repos
from assistd.store.blobs import BlobStore, StoredBlob
from assistd.store.database import Database


def new_file_row(
    project: str,
    file_id: str,
    filename: str,
    purpose: str,
    stored: StoredBlob,
    *,
    content_type: str | None = None,
    expires_at: int | None = None,
    created_at: int | None = None,
) -> dict[str, Any]:
    return {
        "id": file_id,
        "sort_key": ids.sort_key_of(file_id, "file"),
        "project": project,
        "created_at": clock.now() if created_at is None else created_at,
        "filename": filename[:1024],
        "purpose": purpose,
        "bytes": stored.size,
        # Nothing is post-processed, so a file is usable as soon as it is stored.
        "status": "processed",
        "status_details": None,
        "expires_at": expires_at,
        "content_type": content_type,
        "sha256": stored.sha256,
    }


async def store_bytes(
    db: Database,
    blobs: BlobStore,
    project: str,
    filename: str,
    purpose: str,
    data: bytes,
    *,
    content_type: str | None = None,
) -> str:
    """Store ``data`` as a new File object; returns its id. The blob goes if the row fails."""
    file_id = ids.new_id("file")
    stored = await blobs.put(file_id, io.BytesIO(data))
    row = new_file_row(project, file_id, filename, purpose, stored, content_type=content_type)
    try:
        async with db.write() as conn:
            await repos.files.insert(conn, row)
    except BaseException:
        await blobs.delete(file_id)
        raise
    return file_id


async def read_bytes(blobs: BlobStore, file_id: str) -> bytes:
    chunks = [chunk async for chunk in await blobs.open(file_id)]
    return b"".join(chunks)
