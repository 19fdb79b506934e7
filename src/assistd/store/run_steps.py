"""Run steps: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import sqlalchemy as sa

from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import JsonObject, RunStep
from assistd.store.repository import Page, PageQuery, RecordRepository

_repo = RecordRepository(tables.run_steps, "step", RunStep)

# --- used by services/ (run steps, submitting tool outputs)


async def get_in_run(conn: Connection, project: str, run_id: str, step_id: str) -> RunStep | None:
    return await _repo.get(conn, project, step_id, tables.run_steps.c.run_id == run_id)


async def list_page(conn: Connection, project: str, run_id: str, query: PageQuery) -> Page[RunStep]:
    steps = tables.run_steps
    return await _repo.page(conn, [steps.c.project == project, steps.c.run_id == run_id], query)


async def awaiting_outputs(conn: Connection, run_id: str) -> list[RunStep]:
    """The run's open ``tool_calls`` steps: those whose calls wait for tool outputs."""
    steps = tables.run_steps
    result = await conn.execute(
        sa.select(steps).where(
            steps.c.run_id == run_id,
            steps.c.type == "tool_calls",
            steps.c.status == "in_progress",
        )
    )
    return [RunStep.from_row(dict(r)) for r in result.mappings()]


async def set_details(conn: Connection, step: RunStep, details: JsonObject) -> RunStep:
    """Write the step's ``step_details``; returns the step as it now is."""
    steps = tables.run_steps
    await conn.execute(sa.update(steps).where(steps.c.id == step.id).values(step_details=details))
    return step.but(step_details=details)
