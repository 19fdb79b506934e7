"""Runs: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import Run

# --- used by the executor and tools/


async def load(conn: Connection, run_id: str) -> Run:
    """The run ``run_id``, which must exist (the executor holds it)."""
    runs = tables.runs
    result = await conn.execute(sa.select(runs).where(runs.c.id == run_id))
    return Run.from_row(dict(result.mappings().one()))


async def set_usage(conn: Connection, run_id: str, usage: dict[str, int]) -> None:
    """The tokens the run's completions used so far."""
    runs = tables.runs
    await conn.execute(sa.update(runs).where(runs.c.id == run_id).values(usage=usage))
