"""The run state machine: the one place run statuses change.

Every transition is a compare-and-set in the store (``UPDATE ... WHERE status IN (...)``)
and, once committed, emits exactly one event. Steps and messages left open when a run
ends are closed here too, so every path to a terminal state leaves a consistent thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock
from assistd.events.base import Event, EventBus, run_channel
from assistd.protocol.runs import RunStatus
from assistd.store import tables
from assistd.store.database import Database
from assistd.store.repository import Row
from assistd.store.wire import message_to_wire, run_to_wire, step_to_wire

# to-status -> the statuses it may be entered from
TRANSITIONS: dict[RunStatus, tuple[RunStatus, ...]] = {
    "queued": ("requires_action",),
    "in_progress": ("queued",),
    "requires_action": ("in_progress",),
    "cancelling": ("queued", "in_progress", "requires_action"),
    "cancelled": ("queued", "in_progress", "requires_action", "cancelling"),
    "completed": ("in_progress", "cancelling"),
    "incomplete": ("in_progress", "cancelling"),
    "failed": ("queued", "in_progress", "requires_action", "cancelling"),
    "expired": ("queued", "in_progress", "requires_action", "cancelling"),
}
_TIMESTAMP = {
    "cancelled": "cancelled_at",
    "completed": "completed_at",
    "failed": "failed_at",
}
# What an open step / message becomes when its run ends in each terminal status.
_STEP_END = {
    "cancelled": "cancelled",
    "failed": "failed",
    "expired": "expired",
    "completed": "completed",
    "incomplete": "completed",
}
_MESSAGE_REASON = {"cancelled": "run_cancelled", "failed": "run_failed", "expired": "run_expired"}


class InvalidTransition(Exception):
    """The run was not in a status the requested transition may start from."""


@dataclass
class Changes:
    """Rows a transition changed, in the order their events must be sent."""

    run: Row
    steps: list[Row]
    messages: list[Row]


async def transition(
    conn: AsyncConnection,
    run_id: str,
    to: RunStatus,
    *,
    only_from: Sequence[RunStatus] | None = None,
    **fields: Any,
) -> Changes | None:
    """Move ``run_id`` to ``to`` if its status allows; None when it did not.

    Terminal statuses also clear ``expires_at`` and ``required_action``, stamp their
    ``*_at`` field and close the run's open steps and messages.
    """
    allowed = TRANSITIONS[to]
    if only_from is not None:
        allowed = tuple(s for s in allowed if s in only_from)
    now = clock.now()
    values: dict[str, Any] = {"status": to, **fields}
    terminal = to in ("cancelled", "completed", "incomplete", "failed", "expired")
    if terminal:
        values.setdefault("expires_at", None)
        values.setdefault("required_action", None)
        values["worker_id"] = None
        values["lease_until"] = None
        if to in _TIMESTAMP:
            values.setdefault(_TIMESTAMP[to], now)
    runs = tables.runs
    result = await conn.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_(allowed))
        .values(**values)
        .returning(*runs.c)
    )
    row = result.mappings().first()
    if row is None:
        return None
    changes = Changes(run=dict(row), steps=[], messages=[])
    if terminal:
        await _close_children(conn, changes, to, now)
    return changes


async def _close_children(conn: AsyncConnection, changes: Changes, to: str, now: int) -> None:
    run = changes.run
    steps, messages = tables.run_steps, tables.messages
    step_status = _STEP_END[to]
    step_values: dict[str, Any] = {"status": step_status, f"{step_status}_at": now}
    if step_status == "failed":
        step_values["last_error"] = run["last_error"]
    result = await conn.execute(
        sa.update(steps)
        .where(steps.c.run_id == run["id"], steps.c.status == "in_progress")
        .values(**step_values)
        .returning(*steps.c)
    )
    changes.steps = [dict(r) for r in result.mappings()]
    reason = _MESSAGE_REASON.get(to, "max_tokens")
    result = await conn.execute(
        sa.update(messages)
        .where(messages.c.run_id == run["id"], messages.c.status == "in_progress")
        .values(status="incomplete", incomplete_at=now, incomplete_details={"reason": reason})
        .returning(*messages.c)
    )
    changes.messages = [dict(r) for r in result.mappings()]


class Emitter:
    """Publishes wire events for committed changes, on the run's channel."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def send(self, run_id: str, event: str, data: Any) -> None:
        await self.bus.publish(run_channel(run_id), Event(event, data))

    async def run(self, row: Row) -> None:
        await self.send(row["id"], f"thread.run.{row['status']}", run_to_wire(row))

    async def step(self, row: Row, status: str | None = None) -> None:
        name = f"thread.run.step.{status or row['status']}"
        await self.send(row["run_id"], name, step_to_wire(row))

    async def message(self, row: Row, status: str | None = None) -> None:
        name = f"thread.message.{status or row['status']}"
        await self.send(str(row["run_id"]), name, message_to_wire(row))

    async def changes(self, changes: Changes) -> None:
        """Children first (message, then step), then the run: the order clients expect."""
        for message in changes.messages:
            await self.message(message)
        for step in changes.steps:
            await self.step(step)
        await self.run(changes.run)


async def end_run(
    db: Database, emit: Emitter, run_id: str, to: RunStatus, **fields: Any
) -> Changes | None:
    """``transition`` in its own transaction, then its events once committed."""
    async with db.write() as conn:
        changes = await transition(conn, run_id, to, **fields)
    if changes is not None:
        await emit.changes(changes)
    return changes


def lease_deadline(seconds: float) -> float:
    return time.time() + seconds
