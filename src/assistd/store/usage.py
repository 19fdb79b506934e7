"""Token usage per project, model and UTC day: added to per model call, read by
``GET /v1/usage``, ``assistd usage`` and the project budget check."""

from __future__ import annotations

import functools
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


def day_of(timestamp: int) -> date:
    """The UTC date of a Unix time: the day usage is counted on."""
    return datetime.fromtimestamp(timestamp, UTC).date()


@functools.cache
def _upsert(dialect: str) -> Any:
    # INSERT ... ON CONFLICT DO UPDATE exists on both dialects with the same shape; each
    # has its own construct. Built once per dialect: this runs on every model call.
    insert: Callable[[sa.Table], Any] = (
        postgresql.insert if dialect == "postgresql" else sqlite.insert
    )
    statement = insert(_table)
    return statement.on_conflict_do_update(
        index_elements=[_table.c.project, _table.c.day, _table.c.model],
        set_={name: _table.c[name] + statement.excluded[name] for name in _COUNTS},
    )


async def add(
    conn: Connection,
    project: str,
    model: str,
    day: date,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    requests: int = 1,
) -> None:
    """Add one model call's tokens to the project's row for ``model`` on ``day``."""
    await prepared.execute(
        conn,
        _upsert(conn.dialect.name),
        {
            "project": project,
            "day": day,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "requests": requests,
        },
    )


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
    result = await conn.execute(
        sa.select(_table)
        .where(*conditions)
        .order_by(_table.c.day, _table.c.project, _table.c.model)
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
