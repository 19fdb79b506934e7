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
from assistd.store import messages as messages_store
from assistd.store import prepared, run_steps, tables, usage
from assistd.store.database import Connection
from assistd.store.prepared import param, params, prefixed, setting
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


# What an open message left by its run's end gets (``_message_closing``).
_MESSAGE_CLOSING = ("status", "incomplete_at", "incomplete_details")


@functools.cache
def _closing_messages() -> sa.Update:
    messages = tables.messages
    return (
        sa.update(messages)
        .where(messages.c.run_id == param(messages, "run_id"), messages.c.status == "in_progress")
        .values(setting(messages, _MESSAGE_CLOSING))
        .returning(*messages.c)
    )


def _step_closing(closing: Closing, last_error: Any) -> dict[str, Any]:
    """What an open step gets when its run ends (a failed step: the run's error too)."""
    status = closing.step_status
    values: dict[str, Any] = {"status": status, f"{status}_at": closing.now}
    if status == "failed":
        values["last_error"] = last_error
    return values


def _message_closing(closing: Closing) -> dict[str, Any]:
    return {
        "status": "incomplete",
        "incomplete_at": closing.now,
        "incomplete_details": {"reason": closing.message_reason},
    }


async def _close_steps(conn: Connection, run: Run, closing: Closing) -> list[RunStep]:
    values = _step_closing(closing, run.last_error)
    rows = await prepared.execute(
        conn, _closing_steps(tuple(values)), params(values, run_id=run.id)
    )
    return [RunStep.from_row(row) for row in rows]


async def _close_messages(conn: Connection, run: Run, closing: Closing) -> list[Message]:
    values = _message_closing(closing)
    rows = await prepared.execute(conn, _closing_messages(), params(values, run_id=run.id))
    return [Message.from_row(row) for row in rows]


@dataclass(frozen=True)
class Ended:
    """What ends with a run in its last write besides it: the message the run's last
    completion wrote and that message's step, as they end, and that completion's tokens
    (``usage.counted``)."""

    message: Message
    step: RunStep
    counted: dict[str, Any]


async def finish(
    conn: Connection,
    run_id: str,
    to: RunStatus,
    *,
    allowed: Sequence[RunStatus],
    fields: dict[str, Any],
    closing: Closing,
    ended: Ended,
) -> Changes | None:
    """``compare_and_set`` with ``closing``, storing ``ended`` too (whether or not the run
    moved: the message was written either way, the tokens spent). On PostgreSQL one
    statement: one round trip where the transaction took eight (BEGIN, the message's and
    its step's ends, the run's move, the closing of its steps and of its messages, the
    tokens, COMMIT), every run's last write, each round trip a wait for the busy loop."""
    if conn.dialect.name != "postgresql":
        await messages_store.end_with_step(conn, ended.message, ended.step)
        changes = await compare_and_set(
            conn, run_id, to, allowed=allowed, fields=fields, closing=closing
        )
        await usage.add(conn, ended.counted)
        return changes
    values: dict[str, Any] = {"status": to, **fields}
    step_values = _step_closing(closing, fields.get("last_error"))
    given = (
        params(values, id=run_id)
        | {f"p_allowed_{i}": status for i, status in enumerate(allowed)}
        | prefixed(_message_ending(ended.message), "m_")
        | prefixed(_step_ending(ended.step), "s_")
        | prefixed(step_values, "c_")
        | prefixed(_message_closing(closing), "cm_")
        | prefixed(ended.counted, "u_")
    )
    statement = _finishing(tuple(values), len(allowed), tuple(step_values))
    row = (await prepared.execute(conn, statement, given)).first()
    if row is None:
        return None
    run = Run.from_row(row)
    steps: list[RunStep] = []
    closed_messages: list[Message] = []
    if row["x_closed_steps"] or row["x_closed_messages"]:
        # Something else was open (seldom: the last completion's message and step end
        # above): read as closed, for their events.
        steps = [s for s in await run_steps.of_run(conn, run_id) if s.id in _ids(row, "steps")]
        closed_messages = [
            m for m in await messages_store.of_run(conn, run_id) if m.id in _ids(row, "messages")
        ]
    return Changes(run=run, steps=steps, messages=closed_messages)


def _ids(row: dict[str, Any], kind: str) -> set[str]:
    return set(row[f"x_closed_{kind}"] or ())


def _message_ending(message: Message) -> dict[str, Any]:
    return {column: getattr(message, column) for column in messages_store.ENDING} | {
        "id": message.id
    }


def _step_ending(step: RunStep) -> dict[str, Any]:
    return {column: getattr(step, column) for column in run_steps.ENDING} | {"id": step.id}


@functools.cache
def _finishing(
    columns: tuple[str, ...], allowed: int, step_columns: tuple[str, ...]
) -> sa.Select[Any]:
    runs, steps, messages = tables.runs, tables.run_steps, tables.messages
    moved = _moving(columns, False, allowed).cte("moved")

    def values(table: sa.Table, prefix: str, names: Sequence[str]) -> dict[str, Any]:
        return {name: sa.bindparam(prefix + name, type_=table.c[name].type) for name in names}

    def ending(table: sa.Table, prefix: str, names: Sequence[str]) -> sa.CTE:
        """The row ``{prefix}id`` of ``table`` takes ``names`` (whether the run moved)."""
        return (
            sa.update(table)
            .where(table.c.id == sa.bindparam(prefix + "id", type_=table.c.id.type))
            .values(values(table, prefix, names))
            .returning(table.c.id)
            .cte(f"ended_{table.name}")
        )

    def closing(table: sa.Table, ended: str, prefix: str, names: Sequence[str]) -> sa.CTE:
        """The run's other open rows of ``table`` (not ``ended``) take ``names``, if it
        moved."""
        return (
            sa.update(table)
            .where(
                table.c.run_id == param(runs, "id"),
                table.c.status == "in_progress",
                table.c.id != sa.bindparam(ended, type_=table.c.id.type),
                sa.exists(sa.select(moved.c.id)),
            )
            .values(values(table, prefix, names))
            .returning(table.c.id)
            .cte(f"closed_{table.name}")
        )

    ended_message = ending(messages, "m_", messages_store.ENDING)
    ended_step = ending(steps, "s_", run_steps.ENDING)
    counted = usage.upserting("u_").returning(tables.usage_daily.c.shard).cte("counted")
    closed_steps = closing(steps, "s_id", "c_", step_columns)
    closed_messages = closing(messages, "m_id", "cm_", _MESSAGE_CLOSING)
    return sa.select(
        *moved.c,
        sa.select(sa.func.array_agg(closed_steps.c.id)).scalar_subquery().label("x_closed_steps"),
        sa.select(sa.func.array_agg(closed_messages.c.id))
        .scalar_subquery()
        .label("x_closed_messages"),
    ).add_cte(ended_message, ended_step, counted)
