"""Files: the queries services and the executor use, returning typed records."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import File

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
