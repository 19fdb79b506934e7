"""The run state machine: the one place run statuses change.

Every transition is a compare-and-set in the store (``store.run_state``) and, once
committed, emits exactly one event. Steps and messages left open when a run ends are
closed in the same transaction, so every path to a terminal state leaves a consistent
thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from assistd import clock
from assistd.executor.emitter import Emitter
from assistd.observability import metrics
from assistd.protocol.runs import RunStatus
from assistd.store import run_state
from assistd.store.database import Connection, Database
from assistd.store.run_state import Changes, Closing, Ended

__all__ = ["TRANSITIONS", "Changes", "Emitter", "Ended", "end_run", "finish", "transition"]

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


async def transition(
    conn: Connection,
    run_id: str,
    to: RunStatus,
    *,
    only_from: Sequence[RunStatus] | None = None,
    **fields: Any,
) -> Changes | None:
    """Move ``run_id`` to ``to`` if its status allows; None when it did not.

    Entering ``in_progress`` stamps ``started_at`` the first time. Terminal statuses also
    clear ``expires_at``, ``required_action`` and the lease, stamp their ``*_at`` field and
    close the run's open steps and messages.
    """
    allowed, values, closing, now = _move(to, only_from, fields)
    changes = await run_state.compare_and_set(
        conn,
        run_id,
        to,
        allowed=allowed,
        fields=values,
        start_at=now if to == "in_progress" else None,
        closing=closing,
    )
    if changes is not None and closing is not None:
        _observe_end(to, changes)
    return changes


async def finish(
    conn: Connection, run_id: str, to: RunStatus, ended: Ended, **fields: Any
) -> Changes | None:
    """``transition`` to the terminal ``to`` that also stores ``ended`` (the run's last
    message and step as they end, its last completion's tokens): one statement on
    PostgreSQL, for ``Database.write_one``."""
    allowed, values, closing, _ = _move(to, None, fields)
    assert closing is not None, f"{to} is not terminal"
    changes = await run_state.finish(
        conn, run_id, to, allowed=allowed, fields=values, closing=closing, ended=ended
    )
    if changes is not None:
        _observe_end(to, changes)
    return changes


def _move(
    to: RunStatus, only_from: Sequence[RunStatus] | None, fields: dict[str, Any]
) -> tuple[tuple[RunStatus, ...], dict[str, Any], Closing | None, int]:
    """The statuses ``to`` may be entered from, the columns it sets, how it closes the
    run's open steps and messages (None: it does not end the run), and now."""
    allowed = TRANSITIONS[to]
    if only_from is not None:
        allowed = tuple(s for s in allowed if s in only_from)
    now = clock.now()
    values: dict[str, Any] = dict(fields)
    closing = None
    if to in _STEP_END:
        values.setdefault("expires_at", None)
        values.setdefault("required_action", None)
        # A finished run is no one's any more (recovery never looks at it either way).
        values |= {"worker_id": None, "lease_until": None}
        if to in _TIMESTAMP:
            values.setdefault(_TIMESTAMP[to], now)
        closing = Closing(_STEP_END[to], _MESSAGE_REASON.get(to, "max_tokens"), now)
    return allowed, values, closing, now


def _observe_end(to: RunStatus, changes: Changes) -> None:
    # Counted here, the one place every run ends (in its transaction, which commits
    # unless the process dies under it).
    metrics.RUNS.labels(to).inc()
    if changes.run.started_at is not None:
        metrics.RUN_DURATION.observe(max(0.0, time.time() - changes.run.started_at))


async def end_run(
    db: Database, emit: Emitter, run_id: str, to: RunStatus, **fields: Any
) -> Changes | None:
    """``transition`` in its own transaction, then its events once committed."""
    async with db.write() as conn:
        changes = await transition(conn, run_id, to, **fields)
    if changes is not None:
        await emit.changes(changes)
    return changes
