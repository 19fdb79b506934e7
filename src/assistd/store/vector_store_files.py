"""Files attached to vector stores: attach, read, page, set attributes, remove.

A store's file is keyed by ``(vector_store_id, file_id)`` (a ``FileKey``); its public id is
the file's. Ingestion's claims and leases on the same rows are in ``store.ingestion_queue``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from assistd import ids
from assistd.errors import InvalidRequestError
from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import File, VectorStoreFile
from assistd.store.repository import Page, PageQuery, RecordRepository

FileKey = tuple[str, str]  # (vector_store_id, file_id)

files = tables.vector_store_files

# Every column but the parsed text, which only /content reads (one file at a time).
FILE_COLUMNS = tuple(c for c in files.c if c.name != "parsed_text")

_uploads = RecordRepository(tables.files, "file", File)


def file_key(vector_store_id: str, file_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(files.c.vector_store_id == vector_store_id, files.c.file_id == file_id)


def new_file(
    project: str,
    vector_store_id: str,
    file_id: str,
    *,
    chunking_strategy: Mapping[str, Any],
    attributes: Mapping[str, Any] | None,
    batch_id: str | None,
    now: int,
) -> VectorStoreFile:
    """A file attached to a store, waiting for ingestion (no lease: any worker may take it)."""
    return VectorStoreFile(
        vector_store_id=vector_store_id,
        file_id=file_id,
        # Attach order, from the same clock as ids, so files attached in one second still
        # list in the order they were attached.
        sort_key=ids.next_sort_key(),
        project=project,
        created_at=now,
        batch_id=batch_id,
        status="in_progress",
        last_error=None,
        usage_bytes=0,
        chunking_strategy=dict(chunking_strategy),
        attributes=dict(attributes or {}),
        worker_id=None,
        lease_until=None,
        attempts=0,
    )


async def add_many(conn: Connection, attached: Sequence[VectorStoreFile]) -> None:
    """Store new attachments (no parsed text yet)."""
    if attached:
        await conn.execute(sa.insert(files), [f.values() for f in attached])


async def get(
    conn: Connection, project: str, vector_store_id: str, file_id: str
) -> VectorStoreFile | None:
    query = sa.select(*FILE_COLUMNS).where(
        file_key(vector_store_id, file_id), files.c.project == project
    )
    row = (await conn.execute(query)).mappings().first()
    return VectorStoreFile.from_row(dict(row)) if row is not None else None


async def get_with_text(
    conn: Connection, project: str, vector_store_id: str, file_id: str
) -> tuple[VectorStoreFile, str | None] | None:
    """The file and its parsed text (None until it is parsed, or when it could not be)."""
    query = sa.select(files).where(file_key(vector_store_id, file_id), files.c.project == project)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return VectorStoreFile.from_row(dict(row)), row["parsed_text"]


async def present(conn: Connection, vector_store_id: str, file_ids: Sequence[str]) -> set[str]:
    """Which of ``file_ids`` the store holds (in any status)."""
    if not file_ids:
        return set()
    result = await conn.execute(
        sa.select(files.c.file_id).where(
            files.c.vector_store_id == vector_store_id, files.c.file_id.in_(list(file_ids))
        )
    )
    return {row[0] for row in result}


async def set_attributes(
    conn: Connection, vector_store_id: str, file_id: str, attributes: dict[str, Any]
) -> None:
    await conn.execute(
        sa.update(files).where(file_key(vector_store_id, file_id)).values(attributes=attributes)
    )


async def remove(conn: Connection, vector_store_id: str, file_id: str) -> None:
    await conn.execute(sa.delete(files).where(file_key(vector_store_id, file_id)))


async def remove_from_store(
    conn: Connection, vector_store_id: str, file_ids: Sequence[str] | None = None
) -> list[str]:
    """Remove these files (every file when ``None``) from one store; the ids removed."""
    statement = sa.delete(files).where(files.c.vector_store_id == vector_store_id)
    if file_ids is not None:
        statement = statement.where(files.c.file_id.in_(list(file_ids)))
    result = await conn.execute(statement.returning(files.c.file_id))
    return [row[0] for row in result]


async def remove_everywhere(conn: Connection, file_ids: Sequence[str]) -> list[FileKey]:
    """Remove files from every store they are in; the keys removed."""
    if not file_ids:
        return []
    result = await conn.execute(
        sa.delete(files)
        .where(files.c.file_id.in_(list(file_ids)))
        .returning(files.c.vector_store_id, files.c.file_id)
    )
    return [(row[0], row[1]) for row in result]


async def cancel_batch(conn: Connection, batch_id: str) -> list[FileKey]:
    """Cancel a batch's files still in progress (and free their leases); the keys stopped."""
    result = await conn.execute(
        sa.update(files)
        .where(files.c.batch_id == batch_id, files.c.status == "in_progress")
        .values(status="cancelled", worker_id=None, lease_until=None)
        .returning(files.c.vector_store_id, files.c.file_id)
    )
    return [(row[0], row[1]) for row in result]


async def completed_attributes(conn: Connection, vector_store_id: str) -> list[tuple[str, Any]]:
    """``(file_id, attributes)`` of the store's completed files (what search may find)."""
    result = await conn.execute(
        sa.select(files.c.file_id, files.c.attributes).where(
            files.c.vector_store_id == vector_store_id, files.c.status == "completed"
        )
    )
    return [(row.file_id, row.attributes) for row in result]


async def attributes_of(
    conn: Connection, vector_store_id: str, file_ids: Sequence[str]
) -> dict[str, Any]:
    """Each of the store's ``file_ids`` (those it holds) → its attributes."""
    result = await conn.execute(
        sa.select(files.c.file_id, files.c.attributes).where(
            files.c.vector_store_id == vector_store_id, files.c.file_id.in_(list(file_ids))
        )
    )
    return {row.file_id: row.attributes for row in result}


async def filenames(conn: Connection, project: str, file_ids: Sequence[str]) -> dict[str, str]:
    """The uploads' names (of the files that still exist), for search results."""
    found = await _uploads.get_many(conn, project, file_ids)
    return {file_id: upload.filename for file_id, upload in found.items()}


async def _cursor(
    conn: Connection, vector_store_id: str, cursor: str, param: str
) -> tuple[int, str]:
    query = sa.select(files.c.sort_key).where(file_key(vector_store_id, cursor))
    key = (await conn.execute(query)).scalar()
    if key is not None:
        return int(key), cursor
    # The file left the store since that page: its upload key is older than any attach
    # key it had, which keeps paging deterministic rather than failing a client mid-walk.
    uploaded = ids.sort_key_of(cursor, "file")
    if uploaded is None:
        raise InvalidRequestError(
            f"Invalid '{param}': '{cursor}' is not a valid file id.",
            param=param,
            code="invalid_value",
        )
    return uploaded, cursor


async def list_page(
    conn: Connection,
    vector_store_id: str,
    query: PageQuery,
    *,
    status: str | None = None,
    batch_id: str | None = None,
) -> Page[VectorStoreFile]:
    """One page of a store's files in attach order (see ``Repository.page`` for cursors),
    of one batch and in one status when those are given."""
    position = sa.tuple_(files.c.sort_key, files.c.file_id)
    ascending = query.order == "asc"
    conditions = [files.c.vector_store_id == vector_store_id]
    if batch_id is not None:
        conditions.append(files.c.batch_id == batch_id)
    if status is not None:
        conditions.append(files.c.status == status)
    if query.after is not None:
        bound = sa.tuple_(
            *(sa.literal(v) for v in await _cursor(conn, vector_store_id, query.after, "after"))
        )
        conditions.append(position > bound if ascending else position < bound)
    if query.before is not None:
        bound = sa.tuple_(
            *(sa.literal(v) for v in await _cursor(conn, vector_store_id, query.before, "before"))
        )
        conditions.append(position < bound if ascending else position > bound)
    backwards = query.before is not None and query.after is None
    walk_ascending = ascending != backwards
    ordering = (
        (files.c.sort_key.asc(), files.c.file_id.asc())
        if walk_ascending
        else (files.c.sort_key.desc(), files.c.file_id.desc())
    )
    statement = (
        sa.select(*FILE_COLUMNS).where(*conditions).order_by(*ordering).limit(query.limit + 1)
    )
    rows = [VectorStoreFile.from_row(dict(r)) for r in (await conn.execute(statement)).mappings()]
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    if backwards:
        rows.reverse()
    return Page(rows=rows, has_more=has_more)
