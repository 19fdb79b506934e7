"""Statements of the run path built once, their values passed as parameters.

Building a SQLAlchemy statement and computing its cache key costs more than SQLite takes
to run it (a run's ~20 statements took several ms of CPU); a statement object built once
keeps its cache key, so executing it again costs only the execution. Values go in as
``p_<column>`` parameters, typed like their column (JSON columns are serialised).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable
from sqlalchemy.types import TypeEngine

from assistd.store import postgres


def param(table: sa.Table, column: str) -> sa.BindParameter[Any]:
    """The parameter standing for a value of ``column``."""
    return sa.bindparam(f"p_{column}", type_=table.c[column].type)


def row_params(table: sa.Table, prefix: str) -> dict[str, sa.BindParameter[Any]]:
    """``.values()`` of an INSERT of a whole row from parameters named ``prefix`` and the
    column (the INSERTs of one statement's data-modifying CTEs each take their own)."""
    return {c.name: sa.bindparam(prefix + c.name, type_=c.type) for c in table.c}


def prefixed(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A row's ``values`` as the parameters of ``row_params(table, prefix)``."""
    return {prefix + k: v for k, v in values.items()}


def setting(table: sa.Table, columns: tuple[str, ...]) -> dict[str, sa.BindParameter[Any]]:
    """``.values()`` of an UPDATE setting ``columns`` from their parameters."""
    return {column: param(table, column) for column in columns}


def params(values: Mapping[str, Any], **keys: Any) -> dict[str, Any]:
    """The parameters of ``values`` (column → value) and of ``keys`` (name → value)."""
    return {f"p_{column}": value for column, value in {**values, **keys}.items()}


class Rows:
    """What a statement gave: its rows (column name → value) and how many rows it changed."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[dict[str, Any]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)


async def execute(conn: AsyncConnection, statement: Executable, values: Mapping[str, Any]) -> Rows:
    """Run a statement built once (module-level or cached, never one built per call) with
    ``values``.

    It goes straight to the driver (``sqlite3``, or asyncpg's prepared statement) with SQL
    and type conversions SQLAlchemy compiled once for it: SQLAlchemy's execution machinery
    (execution context, parameter construction, result metadata) cost several times what
    SQLite takes to run a run's statements, the largest cost of a streamed run, and twice
    asyncpg's own time on PostgreSQL. What that cannot serve is ``conn.execute``.
    """
    raw = sqlite_connection(conn)
    if raw is not None:
        plan = _plan(statement, conn.dialect, values)
        if plan is not None:
            return plan.run(raw, values)
    elif conn.dialect.name == "postgresql":
        plan = _plan(statement, conn.dialect, values)
        if plan is not None:
            found = await postgres.fetch(conn, plan.sql, plan.args(values))
            if found is not None:
                return plan.rows(found.keys, found.rows, found.rowcount, found.coltypes)
    result = await conn.execute(statement, dict(values))
    rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
    return Rows(rows, result.rowcount)


def sqlite_connection(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn`` (the inline driver's), None on another
    database."""
    if conn.dialect.name != "sqlite":
        return None
    driver = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    raw: sqlite3.Connection | None = getattr(driver, "raw", None)
    return raw


_savepoints = itertools.count()


@asynccontextmanager
async def savepoint(conn: AsyncConnection) -> AsyncIterator[None]:
    """A block whose writes are undone, and only they, if it raises.

    On SQLite the SAVEPOINT goes straight to ``sqlite3``: SQLAlchemy's nested transaction
    costs two statements through its execution, more than the writes of a small block.
    SQLAlchemy does not know of it, and needs not: its transaction goes on around it.
    """
    raw = sqlite_connection(conn)
    if raw is None:
        async with conn.begin_nested():
            yield
        return
    name = f"assistd_{next(_savepoints)}"
    raw.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        raw.execute(f"ROLLBACK TO {name}")
        raw.execute(f"RELEASE {name}")
        raise
    raw.execute(f"RELEASE {name}")


Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    statement: Executable  # held so that its id, the plan's key, stays its own
    sql: str
    # Per position: the value's name, its conversion, and the value when it is a literal
    # of the statement rather than one of the caller's.
    names: tuple[str, ...]
    binds: tuple[Processor, ...]
    literals: dict[str, Any]
    dialect: Dialect
    # Result column name -> its type as the dialect implements it.
    results: dict[str, TypeEngine[Any]]
    # The conversions of a result's columns, by its column names and their types.
    converters: dict[tuple[tuple[str, ...], tuple[Any, ...] | None], list[Processor]]

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The statement's positional parameters, converted for the driver."""
        args = []
        for name, convert in zip(self.names, self.binds, strict=True):
            value = values[name] if name in values else self.literals[name]
            args.append(value if convert is None else convert(value))
        return args

    def rows(
        self,
        keys: Sequence[str],
        found: Iterable[Sequence[Any]],
        rowcount: int,
        coltypes: tuple[Any, ...] | None = None,
    ) -> Rows:
        """``found`` (the driver's rows, columns ``keys`` of types ``coltypes`` where the
        driver tells them) converted from the driver's values."""
        shape = (tuple(keys), coltypes)
        converts = self.converters.get(shape)
        if converts is None:
            converts = self.converters[shape] = self._converts(keys, coltypes)
        rows = [
            {
                key: value if convert is None else convert(value)
                for key, convert, value in zip(keys, converts, row, strict=True)
            }
            for row in found
        ]
        return Rows(rows, rowcount)

    def _converts(self, keys: Sequence[str], coltypes: tuple[Any, ...] | None) -> list[Processor]:
        types = coltypes if coltypes is not None else (None,) * len(keys)
        return [
            result.result_processor(self.dialect, coltype)
            if (result := self.results.get(key)) is not None
            else None
            for key, coltype in zip(keys, types, strict=True)
        ]

    def run(self, raw: sqlite3.Connection, values: Mapping[str, Any]) -> Rows:
        args = self.args(values)
        try:
            cursor = raw.execute(self.sql, args)
        except sqlite3.Error as exc:
            # As SQLAlchemy raises it (IntegrityError, OperationalError...), which callers
            # and the error mapping expect.
            raise sa.exc.DBAPIError.instance(self.sql, args, exc, sqlite3.Error) from exc
        if not cursor.description:
            return Rows([], cursor.rowcount)
        keys = [column[0] for column in cursor.description]
        return self.rows(keys, cursor.fetchall(), cursor.rowcount)


_PLANS: dict[tuple[int, str, tuple[str, ...] | None], _Plan | None] = {}
# Statements built per call would grow the cache without end: past this many plans, new
# statements take SQLAlchemy's path.
_MAX_PLANS = 512


def _plan(statement: Executable, dialect: Dialect, values: Mapping[str, Any]) -> _Plan | None:
    # An INSERT's SQL depends on which columns it is given.
    keys = tuple(sorted(values)) if isinstance(statement, sa.Insert) else None
    # One process may serve both databases (the tests do): each has its own SQL.
    key = (id(statement), dialect.name, keys)
    if key in _PLANS:
        return _PLANS[key]
    if len(_PLANS) >= _MAX_PLANS:
        return None
    plan = _PLANS[key] = _compile(statement, dialect, keys)
    return plan


def _compile(statement: Executable, dialect: Dialect, keys: tuple[str, ...] | None) -> _Plan | None:
    """The statement's plan; None for what it cannot serve (expanding IN lists, named
    parameters): those take SQLAlchemy's path."""
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect, column_keys=list(keys) if keys is not None else None
    )
    names = compiled.positiontup
    if names is None or "POSTCOMPILE" in compiled.string:
        return None
    binds = compiled.binds
    converts: list[Processor] = []
    literals: dict[str, Any] = {}
    for name in names:
        bind = binds[name]
        converts.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
        if not bind.required:
            literals[name] = bind.effective_value
    results: dict[str, TypeEngine[Any]] = {
        column.name: column.type.dialect_impl(dialect)
        for column in getattr(statement, "exported_columns", ())
        if isinstance(column, sa.ColumnElement) and getattr(column, "name", None)
    }
    return _Plan(
        statement, compiled.string, tuple(names), tuple(converts), literals, dialect, results, {}
    )
