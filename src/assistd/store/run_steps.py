"""Run steps: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from assistd.store import prepared, tables
from assistd.store.database import Connection
from assistd.store.prepared import param, params, setting
from assistd.store.records import JsonObject, RunStep
from assistd.store.repository import Page, PageQuery, RecordRepository
from assistd.store.tool_calls import ToolCall, tool_calls_details, tool_calls_of

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


# --- used by the executor and tools/


async def start(conn: Connection, step: RunStep) -> None:
    """Store a step the run begins."""
    await _repo.add(conn, step)


async def drop(conn: Connection, step: RunStep) -> None:
    """Remove a step ``start`` stored that its run never announced."""
    await _repo.remove(conn, step.project, step.id)


ENDING = ("status", "completed_at", "usage")  # what save_ending stores


@functools.cache
def _ending() -> sa.Update:
    steps = tables.run_steps
    return sa.update(steps).where(steps.c.id == param(steps, "id")).values(setting(steps, ENDING))


async def save_ending(conn: Connection, step: RunStep) -> None:
    """Store how ``step`` ended: its status, usage and completion time."""
    values = {"status": step.status, "completed_at": step.completed_at, "usage": step.usage}
    await prepared.execute(conn, _ending(), params(values, id=step.id))


async def save_tool_calls(
    conn: Connection,
    step: RunStep,
    calls: Sequence[ToolCall],
    *,
    usage: dict[str, int],
    completed_at: int | None = None,
) -> RunStep:
    """Store the calls of a ``tool_calls`` step and its completion's usage; with
    ``completed_at`` the step is also completed. Returns the step as stored."""
    changes: dict[str, object] = {"step_details": tool_calls_details(calls), "usage": usage}
    if completed_at is not None:
        changes |= {"status": "completed", "completed_at": completed_at}
    steps = tables.run_steps
    await conn.execute(sa.update(steps).where(steps.c.id == step.id).values(**changes))
    return step.but(**changes)


async def complete_waiting_tool_steps(conn: Connection, run_id: str, now: int) -> list[RunStep]:
    """Complete the run's tool step that waited for outputs (once they were submitted)."""
    values = {"p_run_id": run_id, "p_completed_at": now}
    return [
        RunStep.from_row(row) for row in await prepared.execute(conn, _completing_waiting(), values)
    ]


@functools.cache
def _completing_waiting() -> sa.Update:
    steps = tables.run_steps
    return (
        sa.update(steps)
        .where(
            steps.c.run_id == param(steps, "run_id"),
            steps.c.type == "tool_calls",
            steps.c.status == "in_progress",
        )
        .values(status="completed", completed_at=param(steps, "completed_at"))
        .returning(*steps.c)
    )


async def of_run(conn: Connection, run_id: str) -> list[RunStep]:
    """The run's steps, in order."""
    rows = await prepared.execute(conn, _of_run(), {"p_run_id": run_id})
    return [RunStep.from_row(row) for row in rows]


@functools.cache
def _of_run() -> sa.Select[Any]:
    steps = tables.run_steps
    return (
        sa.select(steps)
        .where(steps.c.run_id == param(steps, "run_id"))
        .order_by(steps.c.sort_key, steps.c.id)
    )


async def builtin_calls_of_thread(conn: Connection, thread_id: str) -> list[ToolCall]:
    """Every built-in call of the thread's runs, in step order."""
    steps = tables.run_steps
    result = await conn.execute(
        sa.select(steps)
        .where(steps.c.thread_id == thread_id, steps.c.type == "tool_calls")
        .order_by(steps.c.sort_key, steps.c.id)
    )
    return builtin_calls([RunStep.from_row(dict(r)) for r in result.mappings()])


def builtin_calls(steps: Sequence[RunStep]) -> list[ToolCall]:
    """The built-in (not function) calls of ``steps``' tool steps, in step order."""
    tool_steps = (s for s in steps if s.type == "tool_calls")
    return [c for s in tool_steps for c in tool_calls_of(s) if c.type != "function"]
