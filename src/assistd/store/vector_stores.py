"""Vector stores: their rows, what their files add up to, and their wire objects.

Shared by the services (the endpoints) and the executor (ingestion, file search), hence
here, below both. A store's files are in ``store.vector_store_files``, its batches in
``store.file_batches``.

``file_counts``, ``usage_bytes`` and the statuses of stores and batches are computed from
the file rows when read, never stored: a count kept beside the rows would drift the first
time two files finished at once, or a file was deleted while a worker was finishing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import ids
from assistd.protocol.vector_stores import (
    FileCounts,
    FileStatus,
    VectorStoreFileBatchObject,
    VectorStoreFileObject,
    VectorStoreObject,
)
from assistd.store import file_batches, tables
from assistd.store import vector_store_files as attached
from assistd.store.database import Connection
from assistd.store.records import FileBatch, VectorStore, VectorStoreFile
from assistd.store.repository import Page, PageQuery, RecordRepository

SECONDS_PER_DAY = 86_400

stores = tables.vector_stores
files = attached.files
batches = file_batches.batches

_repo = RecordRepository(stores, "vector_store", VectorStore)


@dataclass
class Tally:
    """What a store's (or a batch's) files add up to."""

    counts: FileCounts = field(default_factory=FileCounts)
    usage_bytes: int = 0


async def tally(
    conn: AsyncConnection, column: sa.Column[Any], keys: Iterable[str]
) -> dict[str, Tally]:
    """File counts per status and bytes used, per value of ``column`` (a store or a batch)."""
    wanted = list(dict.fromkeys(keys))
    result: dict[str, Tally] = {key: Tally() for key in wanted}
    if not wanted:
        return result
    query = (
        sa.select(
            column,
            files.c.status,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(files.c.usage_bytes), 0),
        )
        .where(column.in_(wanted))
        .group_by(column, files.c.status)
    )
    for key, status, count, usage in await conn.execute(query):
        item = result[key]
        setattr(item.counts, status, int(count))
        item.counts.total += int(count)
        item.usage_bytes += int(usage)
    return result


async def tally_stores(conn: Connection, vector_store_ids: Iterable[str]) -> dict[str, Tally]:
    return await tally(conn, files.c.vector_store_id, vector_store_ids)


async def tally_batches(conn: Connection, batch_ids: Iterable[str]) -> dict[str, Tally]:
    return await tally(conn, files.c.batch_id, batch_ids)


def expiry(expires_after: Mapping[str, Any] | None, last_active_at: int | None) -> int | None:
    """``expires_at`` for a policy anchored at ``last_active_at`` (the only anchor there is)."""
    if not expires_after or last_active_at is None:
        return None
    return last_active_at + int(expires_after["days"]) * SECONDS_PER_DAY


def is_expired(store: VectorStore, now: int) -> bool:
    return _lapsed(store.expires_at, now)


def _lapsed(expires_at: int | None, now: int) -> bool:
    return expires_at is not None and expires_at <= now


def store_to_wire(store: VectorStore, tallied: Tally, now: int) -> VectorStoreObject:
    if is_expired(store, now):
        status = "expired"
    elif tallied.counts.in_progress:
        status = "in_progress"
    else:
        status = "completed"
    return VectorStoreObject.model_validate(
        {
            "id": store.id,
            "created_at": store.created_at,
            # The SDK types the name as a required string: an unnamed store has "".
            "name": store.name or "",
            "usage_bytes": tallied.usage_bytes,
            "file_counts": tallied.counts,
            "status": status,
            "expires_after": store.expires_after,
            "expires_at": store.expires_at,
            "last_active_at": store.last_active_at,
            "metadata": store.metadata,
        }
    )


def file_to_wire(item: VectorStoreFile) -> VectorStoreFileObject:
    return VectorStoreFileObject.model_validate(
        {
            "id": item.file_id,
            "usage_bytes": item.usage_bytes,
            "created_at": item.created_at,
            "vector_store_id": item.vector_store_id,
            "status": item.status,
            "last_error": item.last_error,
            "chunking_strategy": item.chunking_strategy,
            "attributes": item.attributes,
        }
    )


def batch_status(batch: FileBatch, counts: FileCounts) -> FileStatus:
    """A batch is cancelled once cancelled, in progress while any file is, otherwise
    completed, unless every file failed (a batch with some failures still completed)."""
    if batch.status == "cancelled":
        return "cancelled"
    if counts.in_progress:
        return "in_progress"
    if counts.total and counts.failed == counts.total:
        return "failed"
    return "completed"


def batch_to_wire(batch: FileBatch, tallied: Tally) -> VectorStoreFileBatchObject:
    return VectorStoreFileBatchObject(
        id=batch.id,
        created_at=batch.created_at,
        vector_store_id=batch.vector_store_id,
        status=batch_status(batch, tallied.counts),
        file_counts=tallied.counts,
    )


def new_store(
    project: str,
    *,
    name: str | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
    expires_after: Mapping[str, Any] | None,
    now: int,
) -> VectorStore:
    store_id = ids.new_id("vector_store")
    sort_key = ids.key_of_own(store_id, "vector_store")
    policy = dict(expires_after) if expires_after else None
    return VectorStore(
        id=store_id,
        sort_key=sort_key,
        project=project,
        created_at=now,
        name=name,
        description=description,
        metadata=dict(metadata or {}),
        expires_after=policy,
        # Creation is the first activity: the expiry clock starts now.
        last_active_at=now,
        expires_at=expiry(policy, now),
    )


async def create(conn: Connection, store: VectorStore) -> None:
    await _repo.add(conn, store)


async def get_for_project(
    conn: Connection, project: str, vector_store_id: str
) -> VectorStore | None:
    return await _repo.get(conn, project, vector_store_id)


async def get_many(
    conn: Connection, project: str, vector_store_ids: Sequence[str]
) -> dict[str, VectorStore]:
    """The project's stores among ``vector_store_ids``, by id."""
    return await _repo.get_many(conn, project, vector_store_ids)


async def list_page(conn: Connection, project: str, query: PageQuery) -> Page[VectorStore]:
    return await _repo.page(conn, [stores.c.project == project], query)


async def patch(conn: Connection, project: str, vector_store_id: str, **changes: Any) -> bool:
    """Write ``changes`` to the store; False when it does not exist (in ``project``)."""
    return await _repo.patch(conn, project, vector_store_id, **changes)


async def delete(conn: Connection, project: str, vector_store_id: str) -> list[str]:
    """Remove a store with its files and batches; the ids of the files it held.

    Children before the store: correct even where the database does not enforce cascades.
    The store's chunks are the caller's to remove (through its ``ChunkIndex``), after this.
    """
    gone = await attached.remove_from_store(conn, vector_store_id)
    await file_batches.remove_all(conn, vector_store_id)
    await _repo.remove(conn, project, vector_store_id)
    return gone


async def touch(conn: AsyncConnection, vector_store_ids: Iterable[str], now: int) -> None:
    """Mark stores as used now, pushing back their expiry; an expired store stays expired."""
    wanted = list(dict.fromkeys(vector_store_ids))
    if not wanted:
        return
    query = sa.select(stores.c.id, stores.c.expires_after, stores.c.expires_at).where(
        stores.c.id.in_(wanted)
    )
    for row in [dict(r) for r in (await conn.execute(query)).mappings()]:
        if _lapsed(row["expires_at"], now):
            continue
        await conn.execute(
            sa.update(stores)
            .where(stores.c.id == row["id"])
            .values(last_active_at=now, expires_at=expiry(row["expires_after"], now))
        )


# --- used by services/attachments.py and services/references.py


async def existing_ids(
    conn: AsyncConnection, project: str, vector_store_ids: Sequence[str]
) -> set[str]:
    """Which of ``vector_store_ids`` are stores of ``project``."""
    if not vector_store_ids:
        return set()
    t = tables.vector_stores
    query = sa.select(t.c.id).where(t.c.project == project, t.c.id.in_(list(vector_store_ids)))
    return {str(row[0]) for row in await conn.execute(query)}


async def create_unnamed(
    conn: AsyncConnection,
    project: str,
    *,
    metadata: Mapping[str, str] | None,
    expires_after: Mapping[str, Any] | None,
    now: int,
) -> VectorStore:
    """A store made for a thread or an assistant by a helper (no name, no description)."""
    store = new_store(
        project,
        name=None,
        description=None,
        metadata=metadata,
        expires_after=expires_after,
        now=now,
    )
    await create(conn, store)
    return store


async def add_pending_files(
    conn: AsyncConnection,
    project: str,
    vector_store_id: str,
    file_ids: Sequence[str],
    *,
    chunking_strategy: Mapping[str, Any],
    now: int,
) -> None:
    """Attach ``file_ids`` (checked, each once, none in the store yet) for ingestion."""
    await attached.add_many(
        conn,
        [
            attached.new_file(
                project,
                vector_store_id,
                file_id,
                chunking_strategy=chunking_strategy,
                attributes=None,
                batch_id=None,
                now=now,
            )
            for file_id in file_ids
        ],
    )


async def present_file_ids(
    conn: AsyncConnection, vector_store_id: str, file_ids: Sequence[str]
) -> set[str]:
    """Which of ``file_ids`` the store already holds (in any status)."""
    t = tables.vector_store_files
    query = sa.select(t.c.file_id).where(
        t.c.vector_store_id == vector_store_id, t.c.file_id.in_(list(file_ids))
    )
    return {str(row[0]) for row in await conn.execute(query)}
