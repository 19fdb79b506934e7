"""Files: the queries services and the executor use, returning typed records.

Uploads (``services.files``) and the files the code interpreter produces (purpose
``assistants_output``, made by the executor) are the same kind of object; building the
record in one place (``new_file``) keeps their columns from drifting apart.

A file past its ``expires_at`` is gone for every reader (``get_live``, ``list_live_page``)
even before the sweeper (``delete_expired``) removes it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import sqlalchemy as sa

from assistd import clock, ids
from assistd.store import tables
from assistd.store.blobs import BlobStore, StoredBlob
from assistd.store.database import Connection, Database
from assistd.store.records import File
from assistd.store.repository import Page, PageQuery, RecordRepository

_table = tables.files
_repo = RecordRepository(_table, "file", File)


def new_file(
    project: str,
    file_id: str,
    filename: str,
    purpose: str,
    stored: StoredBlob,
    *,
    content_type: str | None = None,
    expires_at: int | None = None,
    created_at: int | None = None,
) -> File:
    """The record of a File object whose bytes ``stored`` describes (not yet stored)."""
    return File(
        id=file_id,
        sort_key=ids.key_of_own(file_id, "file"),
        project=project,
        created_at=clock.now() if created_at is None else created_at,
        filename=filename[:1024],
        purpose=purpose,
        bytes=stored.size,
        # Nothing is post-processed, so a file is usable as soon as it is stored.
        status="processed",
        status_details=None,
        expires_at=expires_at,
        content_type=content_type,
        sha256=stored.sha256,
    )


async def create(conn: Connection, file: File) -> None:
    await _repo.add(conn, file)


def _unexpired() -> sa.ColumnElement[bool]:
    return sa.or_(_table.c.expires_at.is_(None), _table.c.expires_at > clock.now())


async def get_live(conn: Connection, project: str, file_id: str) -> File | None:
    """The file, unless it is absent from the project or has expired."""
    return await _repo.get(conn, project, file_id, _unexpired())


async def get_many(conn: Connection, project: str, file_ids: Sequence[str]) -> dict[str, File]:
    """The project's files among ``file_ids`` by id, expired ones included."""
    return await _repo.get_many(conn, project, file_ids)


async def list_live_page(
    conn: Connection, project: str, query: PageQuery, *, purpose: str | None = None
) -> Page[File]:
    where = [_table.c.project == project, _unexpired()]
    if purpose is not None:
        where.append(_table.c.purpose == purpose)
    return await _repo.page(conn, where, query)


async def delete(conn: Connection, project: str, file_id: str) -> bool:
    return await _repo.remove(conn, project, file_id)


async def delete_expired(conn: Connection) -> list[str]:
    """Remove every file (of any project) whose expiry has passed; returns their ids."""
    result = await conn.execute(
        sa.delete(_table).where(_table.c.expires_at <= clock.now()).returning(_table.c.id)
    )
    return [str(row[0]) for row in result]


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
    file = new_file(project, file_id, filename, purpose, stored, content_type=content_type)
    try:
        async with db.write() as conn:
            await create(conn, file)
    except BaseException:
        await blobs.delete(file_id)
        raise
    return file_id


async def read_bytes(blobs: BlobStore, file_id: str) -> bytes:
    chunks = [chunk async for chunk in await blobs.open(file_id)]
    return b"".join(chunks)


# --- used by the executor and tools/


async def live_among(
    conn: Connection, project: str, file_ids: Sequence[str], now: int
) -> list[File]:
    """The files of ``file_ids`` that exist in ``project`` and have not expired at ``now``,
    in the order of ``file_ids``."""
    if not file_ids:
        return []
    files = tables.files
    result = await conn.execute(
        sa.select(files).where(
            files.c.id.in_(list(file_ids)),
            files.c.project == project,
            sa.or_(files.c.expires_at.is_(None), files.c.expires_at > now),
        )
    )
    found = {r["id"]: File.from_row(dict(r)) for r in result.mappings()}
    return [found[f] for f in file_ids if f in found]
