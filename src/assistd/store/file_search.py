"""Vector-store queries of the file_search tool."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.vector_stores import touch


async def count_ingesting(conn: Connection, vector_store_ids: Sequence[str]) -> int:
    """Files of these stores still being ingested."""
    files = tables.vector_store_files
    count = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(files)
        .where(files.c.vector_store_id.in_(list(vector_store_ids)), files.c.status == "in_progress")
    )
    return int(count or 0)


async def mark_used(conn: Connection, vector_store_ids: Sequence[str], now: int) -> None:
    """The stores were searched now (pushes back their expiry)."""
    await touch(conn, vector_store_ids, now)


async def file_names(conn: Connection, file_ids: Collection[str]) -> dict[str, str]:
    """File id → file name, for the files that exist."""
    if not file_ids:
        return {}
    files = tables.files
    rows = await conn.execute(
        sa.select(files.c.id, files.c.filename).where(files.c.id.in_(list(file_ids)))
    )
    return {r.id: r.filename for r in rows}
