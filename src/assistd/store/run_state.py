"""The writes of the run state machine: a compare-and-set of a run's status and, when the
run ends, the closing of its open steps and messages, in the caller's transaction.

Which status may follow which is the executor's business (``executor.state``); this module
only makes each move atomic: ``UPDATE ... WHERE status IN (...)`` returning the new row.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from assistd.protocol.runs import RunStatus
from assistd.store import prepared, tables
from assistd.store.database import Connection
from assistd.store.prepared import param, params, setting
from assistd.store.records import Message, Run, RunStep


@dataclass(frozen=True)
class Changes:
    """Records a transition changed, in the order their events must be sent."""

    run: Run
    steps: list[RunStep]
    messages: list[Message]


@dataclass(frozen=True)
class Closing:
    """How a run's open children end with it: steps take ``step_status`` (stamped at
    ``now``; a failed step also takes the run's ``last_error``), messages become
    ``incomplete`` for ``message_reason``."""

    step_status: str
    message_reason: str
    now: int


async def compare_and_set(
    conn: Connection,
    run_id: str,
    to: RunStatus,
    *,
    allowed: Sequence[RunStatus],
    fields: dict[str, Any],
    start_at: int | None = None,
    closing: Closing | None = None,
) -> Changes | None:
    """Move the run to ``to`` with ``fields`` if its status is one of ``allowed``; None when
    it was not. ``start_at`` stamps ``started_at`` unless the run already has one;
    ``closing`` also ends the run's open steps and messages."""
    values: dict[str, Any] = {"status": to, **fields}
    statement = _moving(tuple(values), start_at is not None, len(allowed))
    if start_at is not None:
        values["started_at"] = start_at
    given = {f"p_allowed_{i}": status for i, status in enumerate(allowed)}
    row = (await prepared.execute(conn, statement, params(values, id=run_id) | given)).first()
    if row is None:
        return None
    run = Run.from_row(row)
    if closing is None:
        return Changes(run=run, steps=[], messages=[])
    steps = await _close_steps(conn, run, closing)
    messages = await _close_messages(conn, run, closing)
    return Changes(run=run, steps=steps, messages=messages)


@functools.cache
def _moving(columns: tuple[str, ...], stamps_start: bool, allowed: int) -> sa.Update:
    runs = tables.runs
    values: dict[str, Any] = setting(runs, columns)
    if stamps_start:
        values["started_at"] = sa.func.coalesce(runs.c.started_at, param(runs, "started_at"))
    return (
        sa.update(runs)
        .where(
            runs.c.id == param(runs, "id"),
            # One parameter per allowed status rather than an expanding IN list, whose
            # SQL is rebuilt on every execution.
            sa.or_(
                sa.false(),
                *(runs.c.status == sa.bindparam(f"p_allowed_{i}") for i in range(allowed)),
            ),
        )
        .values(values)
        .returning(*runs.c)
    )


@functools.cache
def _closing_steps(columns: tuple[str, ...]) -> sa.Update:
    steps = tables.run_steps
    return (
        sa.update(steps)
        .where(steps.c.run_id == param(steps, "run_id"), steps.c.status == "in_progress")
        .values(setting(steps, columns))
        .returning(*steps.c)
    )


@functools.cache
def _closing_messages() -> sa.Update:
    messages = tables.messages
    columns = ("status", "incomplete_at", "incomplete_details")
    return (
        sa.update(messages)
        .where(messages.c.run_id == param(messages, "run_id"), messages.c.status == "in_progress")
        .values(setting(messages, columns))
        .returning(*messages.c)
    )


async def _close_steps(conn: Connection, run: Run, closing: Closing) -> list[RunStep]:
    status = closing.step_status
    values: dict[str, Any] = {"status": status, f"{status}_at": closing.now}
    if status == "failed":
        values["last_error"] = run.last_error
    rows = await prepared.execute(
        conn, _closing_steps(tuple(values)), params(values, run_id=run.id)
    )
    return [RunStep.from_row(row) for row in rows]


async def _close_messages(conn: Connection, run: Run, closing: Closing) -> list[Message]:
    values = {
        "status": "incomplete",
        "incomplete_at": closing.now,
        "incomplete_details": {"reason": closing.message_reason},
    }
    rows = await prepared.execute(conn, _closing_messages(), params(values, run_id=run.id))
    return [Message.from_row(row) for row in rows]
