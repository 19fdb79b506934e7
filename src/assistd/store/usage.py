"""Token usage per project, model and UTC day: added to per model call, read by
``GET /v1/usage``, ``assistd usage`` and the project budget check."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from assistd.store import prepared, tables
from assistd.store.database import Connection
from assistd.store.records import UsageDay

_table = tables.usage_daily
_COUNTS = ("prompt_tokens", "completion_tokens", "requests")
# Rows a key's counts are spread over: a call adds to one at random, so that concurrent
# runs' last transactions (which count their tokens) seldom wait for each other's commit
# on one row lock.
SHARDS = 16


def day_of(timestamp: int) -> date:
    """The UTC date of a Unix time: the day usage is counted on."""
    return datetime.fromtimestamp(timestamp, UTC).date()


@functools.cache
def _upsert(dialect: str, prefix: str = "") -> Any:
    """``add``'s statement, its parameters named ``prefix`` and the column (a prefix lets
    it be one of a statement's data-modifying CTEs). INSERT ... ON CONFLICT DO UPDATE
    exists on both dialects with the same shape; each has its own construct. Built once:
    this runs on every model call."""
    insert: Callable[[sa.Table], Any] = (
        postgresql.insert if dialect == "postgresql" else sqlite.insert
    )
    statement = insert(_table).values(prepared.row_params(_table, prefix))
    return statement.on_conflict_do_update(
        index_elements=[_table.c.project, _table.c.day, _table.c.model, _table.c.shard],
        set_={name: _table.c[name] + statement.excluded[name] for name in _COUNTS},
    )


def counted(
    project: str,
    model: str,
    day: date,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    requests: int = 1,
) -> dict[str, Any]:
    """One model call's tokens, as ``add`` (or ``upserting``) adds them to the project's
    row for ``model`` on ``day``."""
    return {
        "project": project,
        "day": day,
        "model": model,
        "shard": random.randrange(SHARDS),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "requests": requests,
    }


async def add(conn: Connection, values: dict[str, Any]) -> None:
    """Add one model call's tokens (``counted``) to their row."""
    await prepared.execute(conn, _upsert(conn.dialect.name), values)


def upserting(prefix: str) -> sa.Insert:
    """PostgreSQL's ``add`` with parameters named ``prefix`` and the column, to be one of
    a statement's data-modifying CTEs (``prefixed(counted(...), prefix)``)."""
    statement: sa.Insert = _upsert("postgresql", prefix)
    return statement


async def daily(
    conn: Connection,
    project: str | None,
    *,
    start: date | None = None,
    end: date | None = None,
    model: str | None = None,
) -> list[UsageDay]:
    """Rows between ``start`` and ``end`` (both inclusive), by day, project and model;
    ``project=None``: every project's (the operator's CLI)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if project is not None:
        conditions.append(_table.c.project == project)
    if start is not None:
        conditions.append(_table.c.day >= start)
    if end is not None:
        conditions.append(_table.c.day <= end)
    if model is not None:
        conditions.append(_table.c.model == model)
    keys = (_table.c.day, _table.c.project, _table.c.model)
    # Cast: PostgreSQL sums a bigint as a numeric.
    counts = (sa.cast(sa.func.sum(_table.c[name]), sa.BigInteger).label(name) for name in _COUNTS)
    result = await conn.execute(
        sa.select(*keys, *counts).where(*conditions).group_by(*keys).order_by(*keys)
    )
    return [UsageDay.from_row(dict(row)) for row in result.mappings()]


async def tokens_since(conn: Connection, project: str, since: date) -> int:
    """Prompt and completion tokens the project used from ``since`` on."""
    total = await conn.scalar(
        sa.select(
            sa.func.coalesce(sa.func.sum(_table.c.prompt_tokens + _table.c.completion_tokens), 0)
        ).where(_table.c.project == project, _table.c.day >= since)
    )
    return int(total or 0)
