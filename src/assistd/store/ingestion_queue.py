"""The ingestion work queue: claims and leases on vector store file rows.

A file attached to a store is a row ``in_progress`` with no lease, and any worker may take
it. ``claim_next`` takes files with one conditional update each (two workers never both
win); the worker renews its leases while it works, and ``finish``/``fail`` write the end
only if the row is still in progress, still the same attach (its ``sort_key``, the
"generation") *and still its own*: a file that was deleted, cancelled or attached again
meanwhile is never resurrected. ``retrieval.ingestion`` holds the policy (how many, how
long, how often); this module only the statements.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import File, JsonObject, VectorStoreFile
from assistd.store.repository import RecordRepository
from assistd.store.vector_store_files import FILE_COLUMNS, FileKey, file_key, files

Claim = tuple[FileKey, int]  # a file and the generation (sort_key) of the attach claimed

_uploads = RecordRepository(tables.files, "file", File)


def _lapsed(now: float) -> sa.ColumnElement[bool]:
    return sa.or_(files.c.lease_until.is_(None), files.c.lease_until < now)


def _mine(key: FileKey, generation: int, worker_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        file_key(*key),
        files.c.sort_key == generation,
        files.c.status == "in_progress",
        files.c.worker_id == worker_id,
    )


async def backlog(conn: Connection) -> int:
    """Files waiting for or in ingestion, across every store and project."""
    count = await conn.scalar(
        sa.select(sa.func.count()).select_from(files).where(files.c.status == "in_progress")
    )
    return int(count or 0)


async def free_all(conn: Connection) -> None:
    """Free every lease on unfinished files (a single-process store starting up)."""
    await conn.execute(
        sa.update(files)
        .where(files.c.status == "in_progress", files.c.lease_until.is_not(None))
        .values(worker_id=None, lease_until=None)
    )


async def release(conn: Connection, worker_id: str) -> None:
    """Hand back a worker's unfinished files, undoing the attempt (a clean stop is not the
    files' fault)."""
    await conn.execute(
        sa.update(files)
        .where(files.c.worker_id == worker_id, files.c.status == "in_progress")
        .values(worker_id=None, lease_until=None, attempts=files.c.attempts - 1)
    )


async def fail_exhausted(
    conn: Connection, *, now: float, max_attempts: int, error: JsonObject
) -> None:
    """End with ``error`` the unleased files already taken ``max_attempts`` times."""
    await conn.execute(
        sa.update(files)
        .where(files.c.status == "in_progress", _lapsed(now), files.c.attempts >= max_attempts)
        .values(status="failed", last_error=error, worker_id=None, lease_until=None)
    )


async def claim_next(
    conn: Connection, worker_id: str, *, limit: int, now: float, lease_until: float
) -> list[Claim]:
    """Take up to ``limit`` unleased files, oldest attach first, counting an attempt each."""
    candidates = await conn.execute(
        sa.select(files.c.vector_store_id, files.c.file_id, files.c.sort_key)
        .where(files.c.status == "in_progress", _lapsed(now))
        .order_by(files.c.sort_key)
        .limit(limit)
    )
    claimed: list[Claim] = []
    for vector_store_id, file_id, generation in candidates.all():
        # Conditional: on PostgreSQL another process may have taken it since.
        result = await conn.execute(
            sa.update(files)
            .where(
                file_key(vector_store_id, file_id),
                files.c.sort_key == generation,
                files.c.status == "in_progress",
                _lapsed(now),
            )
            .values(worker_id=worker_id, lease_until=lease_until, attempts=files.c.attempts + 1)
        )
        if result.rowcount:
            claimed.append(((vector_store_id, file_id), int(generation)))
    return claimed


async def renew_leases(
    conn: Connection, worker_id: str, keys: Sequence[FileKey], lease_until: float
) -> set[Claim]:
    """Extend the worker's leases on ``keys``; the claims it still holds afterwards."""
    mine = sa.and_(
        files.c.worker_id == worker_id,
        files.c.status == "in_progress",
        sa.tuple_(files.c.vector_store_id, files.c.file_id).in_(list(keys)),
    )
    await conn.execute(sa.update(files).where(mine).values(lease_until=lease_until))
    result = await conn.execute(
        sa.select(files.c.vector_store_id, files.c.file_id, files.c.sort_key).where(mine)
    )
    return {((row[0], row[1]), row[2]) for row in result}


async def get_claimed(
    conn: Connection, key: FileKey, generation: int, worker_id: str
) -> VectorStoreFile | None:
    """The file, if the worker still holds this attach of it."""
    query = sa.select(*FILE_COLUMNS).where(_mine(key, generation, worker_id))
    row = (await conn.execute(query)).mappings().first()
    return VectorStoreFile.from_row(dict(row)) if row is not None else None


async def upload_of(conn: Connection, attached: VectorStoreFile) -> File | None:
    """The uploaded File behind an attached file (None once it was deleted)."""
    return await _uploads.get(conn, attached.project, attached.file_id)


async def fail(
    conn: Connection, key: FileKey, generation: int, worker_id: str, error: JsonObject
) -> None:
    """End the worker's claim ``failed`` with ``error`` (nothing if it is no longer its own)."""
    await conn.execute(
        sa.update(files)
        .where(_mine(key, generation, worker_id))
        .values(status="failed", last_error=error, worker_id=None, lease_until=None)
    )


async def finish(
    conn: Connection,
    key: FileKey,
    generation: int,
    worker_id: str,
    *,
    parsed_text: str,
    usage_bytes: int,
) -> bool:
    """Mark the worker's claim ``completed``; False if it is no longer its own.

    Called first in the transaction that stores the chunks: the update locks the row, so
    a delete racing the commit either ran before (nothing matches) or waits and then sees
    the chunks.
    """
    result = await conn.execute(
        sa.update(files)
        .where(_mine(key, generation, worker_id))
        .values(
            status="completed",
            usage_bytes=usage_bytes,
            parsed_text=parsed_text,
            last_error=None,
            worker_id=None,
            lease_until=None,
        )
    )
    return bool(result.rowcount)
