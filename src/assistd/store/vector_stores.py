"""Rows of vector stores, their files and file batches: counts, paging, wire objects.

Shared by the services (the endpoints) and the executor (ingestion, file search), hence
here, below both.

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
from assistd.errors import InvalidRequestError
from assistd.protocol.vector_stores import (
    FileCounts,
    FileStatus,
    VectorStoreFileBatchObject,
    VectorStoreFileObject,
    VectorStoreObject,
)
from assistd.store import tables
from assistd.store.records import VectorStore
from assistd.store.repository import Page, PageQuery, Row

SECONDS_PER_DAY = 86_400

stores = tables.vector_stores
files = tables.vector_store_files
batches = tables.vector_store_file_batches

# Every column but the parsed text, which only /content reads (one file at a time).
FILE_COLUMNS = tuple(c for c in files.c if c.name != "parsed_text")


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


def expiry(expires_after: Mapping[str, Any] | None, last_active_at: int | None) -> int | None:
    """``expires_at`` for a policy anchored at ``last_active_at`` (the only anchor there is)."""
    if not expires_after or last_active_at is None:
        return None
    return last_active_at + int(expires_after["days"]) * SECONDS_PER_DAY


def is_expired(row: Row, now: int) -> bool:
    return row["expires_at"] is not None and row["expires_at"] <= now


def store_to_wire(row: Row, tallied: Tally, now: int) -> VectorStoreObject:
    if is_expired(row, now):
        status = "expired"
    elif tallied.counts.in_progress:
        status = "in_progress"
    else:
        status = "completed"
    return VectorStoreObject.model_validate(
        {
            "id": row["id"],
            "created_at": row["created_at"],
            # The SDK types the name as a required string: an unnamed store has "".
            "name": row["name"] or "",
            "usage_bytes": tallied.usage_bytes,
            "file_counts": tallied.counts,
            "status": status,
            "expires_after": row["expires_after"],
            "expires_at": row["expires_at"],
            "last_active_at": row["last_active_at"],
            "metadata": row["metadata"],
        }
    )


def file_to_wire(row: Row) -> VectorStoreFileObject:
    return VectorStoreFileObject.model_validate(
        {
            "id": row["file_id"],
            "usage_bytes": row["usage_bytes"],
            "created_at": row["created_at"],
            "vector_store_id": row["vector_store_id"],
            "status": row["status"],
            "last_error": row["last_error"],
            "chunking_strategy": row["chunking_strategy"],
            "attributes": row["attributes"],
        }
    )


def batch_status(row: Row, counts: FileCounts) -> FileStatus:
    """A batch is cancelled once cancelled, in progress while any file is, otherwise
    completed, unless every file failed (a batch with some failures still completed)."""
    if row["status"] == "cancelled":
        return "cancelled"
    if counts.in_progress:
        return "in_progress"
    if counts.total and counts.failed == counts.total:
        return "failed"
    return "completed"


def batch_to_wire(row: Row, tallied: Tally) -> VectorStoreFileBatchObject:
    return VectorStoreFileBatchObject(
        id=row["id"],
        created_at=row["created_at"],
        vector_store_id=row["vector_store_id"],
        status=batch_status(row, tallied.counts),
        file_counts=tallied.counts,
    )


def new_store_row(
    project: str,
    *,
    name: str | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
    expires_after: Mapping[str, Any] | None,
    now: int,
) -> dict[str, Any]:
    store_id = ids.new_id("vector_store")
    policy = dict(expires_after) if expires_after else None
    return {
        "id": store_id,
        "sort_key": ids.sort_key_of(store_id, "vector_store"),
        "project": project,
        "created_at": now,
        "name": name,
        "description": description,
        "metadata": dict(metadata or {}),
        "expires_after": policy,
        # Creation is the first activity: the expiry clock starts now.
        "last_active_at": now,
        "expires_at": expiry(policy, now),
    }


def new_file_row(
    project: str,
    vector_store_id: str,
    file_id: str,
    *,
    chunking_strategy: Mapping[str, Any],
    attributes: Mapping[str, Any] | None,
    batch_id: str | None,
    now: int,
) -> dict[str, Any]:
    """A file attached to a store, waiting for ingestion (no lease: any worker may take it)."""
    return {
        "vector_store_id": vector_store_id,
        "file_id": file_id,
        # Attach order, from the same clock as ids, so files attached in one second still
        # list in the order they were attached.
        "sort_key": ids.next_sort_key(),
        "project": project,
        "created_at": now,
        "batch_id": batch_id,
        "status": "in_progress",
        "last_error": None,
        "usage_bytes": 0,
        "chunking_strategy": dict(chunking_strategy),
        "attributes": dict(attributes or {}),
        "parsed_text": None,
        "worker_id": None,
        "lease_until": None,
        "attempts": 0,
    }


def file_key(vector_store_id: str, file_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(files.c.vector_store_id == vector_store_id, files.c.file_id == file_id)


async def get_file(
    conn: AsyncConnection,
    project: str,
    vector_store_id: str,
    file_id: str,
    *,
    with_text: bool = False,
) -> Row | None:
    columns = files.c if with_text else FILE_COLUMNS
    query = sa.select(*columns).where(
        file_key(vector_store_id, file_id), files.c.project == project
    )
    row = (await conn.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def _cursor(
    conn: AsyncConnection, vector_store_id: str, cursor: str, param: str
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


async def page_files(
    conn: AsyncConnection,
    vector_store_id: str,
    where: Sequence[sa.ColumnElement[bool]],
    query: PageQuery,
) -> Page[Row]:
    """One page of a store's files in attach order (see ``Repository.page`` for cursors)."""
    position = sa.tuple_(files.c.sort_key, files.c.file_id)
    ascending = query.order == "asc"
    conditions = [files.c.vector_store_id == vector_store_id, *where]
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
    rows: list[Row] = [dict(r) for r in (await conn.execute(statement)).mappings()]
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    if backwards:
        rows.reverse()
    # Pages are read by the generic list envelope, which takes the public id from "id".
    return Page(rows=[{**row, "id": row["file_id"]} for row in rows], has_more=has_more)


async def touch(conn: AsyncConnection, vector_store_ids: Iterable[str], now: int) -> None:
    """Mark stores as used now, pushing back their expiry; an expired store stays expired."""
    wanted = list(dict.fromkeys(vector_store_ids))
    if not wanted:
        return
    query = sa.select(stores.c.id, stores.c.expires_after, stores.c.expires_at).where(
        stores.c.id.in_(wanted)
    )
    for row in [dict(r) for r in (await conn.execute(query)).mappings()]:
        if is_expired(row, now):
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
    values = new_store_row(
        project,
        name=None,
        description=None,
        metadata=metadata,
        expires_after=expires_after,
        now=now,
    )
    await conn.execute(sa.insert(tables.vector_stores).values(**values))
    return VectorStore.from_row(values)


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
    attached = [
        new_file_row(
            project,
            vector_store_id,
            file_id,
            chunking_strategy=chunking_strategy,
            attributes=None,
            batch_id=None,
            now=now,
        )
        for file_id in file_ids
    ]
    if attached:
        await conn.execute(sa.insert(tables.vector_store_files), attached)


async def present_file_ids(
    conn: AsyncConnection, vector_store_id: str, file_ids: Sequence[str]
) -> set[str]:
    """Which of ``file_ids`` the store already holds (in any status)."""
    t = tables.vector_store_files
    query = sa.select(t.c.file_id).where(
        t.c.vector_store_id == vector_store_id, t.c.file_id.in_(list(file_ids))
    )
    return {str(row[0]) for row in await conn.execute(query)}
