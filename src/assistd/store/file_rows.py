"""The ``files`` row of a stored File object: now in ``store.files``, kept under these names
for the code interpreter's callers."""

from __future__ import annotations

from typing import Any

from assistd.store.blobs import StoredBlob
from assistd.store.files import new_file, read_bytes, store_bytes

__all__ = ["new_file_row", "read_bytes", "store_bytes"]


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
    return new_file(
        project,
        file_id,
        filename,
        purpose,
        stored,
        content_type=content_type,
        expires_at=expires_at,
        created_at=created_at,
    ).values()
