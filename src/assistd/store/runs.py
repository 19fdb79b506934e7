"""Runs: the queries services and the executor use, returning typed records."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from assistd.protocol.runs import ACTIVE_STATUSES, RunStatus
from assistd.store import prepared, tables
from assistd.store.database import Connection
from assistd.store.prepared import param, params, setting
from assistd.store.records import Run
from assistd.store.repository import Page, PageQuery, RecordRepository

_repo = RecordRepository(tables.runs, "run", Run)

# --- used by services/ (runs, run steps, streams, the thread lock)


async def create(conn: Connection, run: Run) -> bool:
    """Store a new run; False, with nothing stored, when the database refuses it: the
    unique index on active runs caught a concurrent creation on the same thread."""
    if conn.dialect.name == "postgresql":
        # ON CONFLICT DO NOTHING rather than a savepoint around a failing INSERT: two round
        # trips fewer on a run's way to its first token.
        inserted = await prepared.execute(conn, _inserting_unless_active(), run.values())
        return inserted.rowcount > 0
    try:
        async with prepared.savepoint(conn):
            await _repo.add(conn, run)
    except IntegrityError:
        return False
    return True


async def add(conn: Connection, run: Run) -> None:
    """Store a new run that cannot conflict with an active one (its thread is new)."""
    await _repo.add(conn, run)


@functools.cache
def _inserting_unless_active() -> sa.Insert:
    return postgresql.insert(tables.runs).on_conflict_do_nothing()


@functools.cache
def _by_id() -> sa.Select[Any]:
    runs = tables.runs
    return sa.select(runs).where(runs.c.id == param(runs, "id"))


async def get(conn: Connection, run_id: str) -> Run | None:
    """The run ``run_id`` in any project (for code that already holds the id)."""
    row = (await prepared.execute(conn, _by_id(), {"p_id": run_id})).first()
    return Run.from_row(row) if row is not None else None


async def get_in_thread(conn: Connection, project: str, thread_id: str, run_id: str) -> Run | None:
    return await _repo.get(conn, project, run_id, tables.runs.c.thread_id == thread_id)


async def list_page(conn: Connection, project: str, thread_id: str, query: PageQuery) -> Page[Run]:
    runs = tables.runs
    return await _repo.page(conn, [runs.c.project == project, runs.c.thread_id == thread_id], query)


async def patch(conn: Connection, run: Run, **changes: Any) -> Run:
    """Write ``changes`` (column → value) to ``run``; returns it as it now is."""
    await _repo.patch(conn, run.project, run.id, **changes)
    return run.but(**changes)


async def lock(conn: Connection, run_id: str) -> None:
    """Lock the run's row for this transaction (a no-op on SQLite, whose writers are
    serialised anyway), so concurrent writers of the run queue behind this one."""
    runs = tables.runs
    await conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id).with_for_update())


@functools.cache
def _active_in_thread() -> sa.Select[Any]:
    runs = tables.runs
    return sa.select(runs.c.id).where(
        runs.c.thread_id == param(runs, "thread_id"), runs.c.status.in_(ACTIVE_STATUSES)
    )


async def active_in_thread(conn: Connection, thread_id: str) -> str | None:
    """The id of the thread's active run, if it has one."""
    found = await conn.scalar(_active_in_thread(), {"p_thread_id": thread_id})
    return str(found) if found is not None else None


async def overdue(conn: Connection, now: int) -> list[str]:
    """Ids of runs still queued, executing or waiting for tool outputs at their
    ``expires_at``."""
    runs = tables.runs
    result = await conn.execute(
        sa.select(runs.c.id).where(
            runs.c.status.in_(("queued", "in_progress", "requires_action")),
            runs.c.expires_at <= now,
        )
    )
    return [str(r[0]) for r in result]


# --- used by the queue implementation (queue/inprocess.py): the worker lease


@functools.cache
def _leasing_queued() -> sa.Update:
    runs = tables.runs
    return (
        sa.update(runs)
        .where(runs.c.id == param(runs, "id"), runs.c.status == "queued")
        .values(setting(runs, ("worker_id", "lease_until")))
    )


async def lease_queued(conn: Connection, run_id: str, *, worker_id: str, until: float) -> bool:
    """Lease the run to ``worker_id`` until ``until`` if it is queued; False when not."""
    result = await prepared.execute(
        conn,
        _leasing_queued(),
        params({"worker_id": worker_id, "lease_until": until}, id=run_id),
    )
    return bool(result.rowcount)


async def take_over_lapsed(
    conn: Connection,
    run_id: str,
    status: RunStatus,
    *,
    worker_id: str,
    until: float,
    now: float | None,
) -> bool:
    """Lease the run to ``worker_id`` if it still has ``status`` and its lease is missing or
    lapsed before ``now`` (``now=None``: whatever its lease): the compare-and-set by which
    one of several recovering workers, and only one, takes over an abandoned run."""
    runs = tables.runs
    conditions: list[sa.ColumnElement[bool]] = [runs.c.id == run_id, runs.c.status == status]
    if now is not None:
        conditions.append(sa.or_(runs.c.lease_until.is_(None), runs.c.lease_until < now))
    result = await conn.execute(
        sa.update(runs).where(*conditions).values(worker_id=worker_id, lease_until=until)
    )
    return bool(result.rowcount)


async def renew_leases(
    conn: Connection, run_ids: Sequence[str], *, worker_id: str, until: float
) -> None:
    """Extend the leases of ``run_ids`` that are still queued or executing."""
    if not run_ids:
        return
    runs = tables.runs
    await conn.execute(
        sa.update(runs)
        .where(runs.c.id.in_(list(run_ids)), runs.c.status.in_(("queued", "in_progress")))
        .values(worker_id=worker_id, lease_until=until)
    )


async def with_lapsed_lease(conn: Connection, *, now: float | None) -> list[Run]:
    """Runs some worker should hold (queued, in progress or cancelling) whose lease is
    missing or lapsed before ``now``; with ``now=None`` every such run, leased or not."""
    runs = tables.runs
    conditions: list[sa.ColumnElement[bool]] = [
        runs.c.status.in_(("queued", "in_progress", "cancelling"))
    ]
    if now is not None:
        conditions.append(sa.or_(runs.c.lease_until.is_(None), runs.c.lease_until < now))
    result = await conn.execute(sa.select(runs).where(*conditions))
    return [Run.from_row(dict(r)) for r in result.mappings()]


# --- used by the executor and tools/


async def load(conn: Connection, run_id: str) -> Run:
    """The run ``run_id``, which must exist (the executor holds it)."""
    result = await conn.execute(_by_id(), {"p_id": run_id})
    return Run.from_row(dict(result.mappings().one()))


@functools.cache
def _setting_usage() -> sa.Update:
    runs = tables.runs
    return sa.update(runs).where(runs.c.id == param(runs, "id")).values(setting(runs, ("usage",)))


async def set_usage(conn: Connection, run_id: str, usage: dict[str, int]) -> None:
    """The tokens the run's completions used so far."""
    await conn.execute(_setting_usage(), params({"usage": usage}, id=run_id))


async def cancelling_among(conn: Connection, run_ids: Sequence[str]) -> list[str]:
    """Which of ``run_ids`` are ``cancelling``: a worker's check for cancel requests that
    did not reach it (sent to another process, or lost with the bus)."""
    if not run_ids:
        return []
    runs = tables.runs
    result = await conn.execute(
        sa.select(runs.c.id).where(runs.c.id.in_(list(run_ids)), runs.c.status == "cancelling")
    )
    return [str(row) for row in result.scalars()]
