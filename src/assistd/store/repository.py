"""Generic row access for object tables: get, insert, update, delete and cursor pages.

Every query is scoped to a project, so an object of another project is simply absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import ids
from assistd.errors import InvalidRequestError
from assistd.store import prepared
from assistd.store.prepared import param
from assistd.store.records import Record

Row = Mapping[str, Any]
Order = Literal["asc", "desc"]
T = TypeVar("T")
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class PageQuery:
    """A validated list request: ``after``/``before`` are object ids (cursors)."""

    limit: int = 20
    order: Order = "desc"
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: Sequence[T]
    has_more: bool


class Repository:
    """Rows of one object table (with ``id``, ``sort_key``, ``project`` columns)."""

    def __init__(self, table: sa.Table, kind: str) -> None:
        self.table = table
        self.kind = kind
        # Built once (``store.prepared``): fetching one object is the commonest query.
        self._by_id = sa.select(table).where(
            table.c.id == param(table, "id"), table.c.project == param(table, "project")
        )
        self._insert = table.insert()

    def _scope(self, project: str, object_id: str) -> sa.ColumnElement[bool]:
        t = self.table
        return sa.and_(t.c.id == object_id, t.c.project == project)

    async def insert(self, conn: AsyncConnection, values: Mapping[str, Any]) -> None:
        # Values as parameters of the table's one INSERT (compiled once, then cached), not
        # baked into a new statement: building one costs more than SQLite's insert itself.
        await prepared.execute(conn, self._insert, values)

    async def get(
        self,
        conn: AsyncConnection,
        project: str,
        object_id: str,
        *extra: sa.ColumnElement[bool],
    ) -> Row | None:
        if extra:
            query = sa.select(self.table).where(self._scope(project, object_id), *extra)
            found = (await conn.execute(query)).mappings().first()
            return dict(found) if found is not None else None
        rows = await prepared.execute(conn, self._by_id, {"p_id": object_id, "p_project": project})
        return rows.first()

    async def get_many(
        self, conn: AsyncConnection, project: str, object_ids: Sequence[str]
    ) -> dict[str, Row]:
        if not object_ids:
            return {}
        t = self.table
        query = sa.select(t).where(t.c.project == project, t.c.id.in_(list(object_ids)))
        result = await conn.execute(query)
        return {row["id"]: dict(row) for row in result.mappings()}

    async def update(
        self, conn: AsyncConnection, project: str, object_id: str, values: Mapping[str, Any]
    ) -> bool:
        if not values:
            return True
        query = sa.update(self.table).where(self._scope(project, object_id)).values(**values)
        result = await conn.execute(query)
        return result.rowcount > 0

    async def delete(self, conn: AsyncConnection, project: str, object_id: str) -> bool:
        result = await conn.execute(sa.delete(self.table).where(self._scope(project, object_id)))
        return result.rowcount > 0

    def cursor_key(self, cursor: str, param: str) -> tuple[int, str]:
        key = ids.sort_key_of(cursor, self.kind)
        if key is None:
            raise InvalidRequestError(
                f"Invalid '{param}': '{cursor}' is not a valid {self.kind} id.",
                param=param,
                code="invalid_value",
            )
        return key, cursor

    async def page(
        self,
        conn: AsyncConnection,
        where: Sequence[sa.ColumnElement[bool]],
        query: PageQuery,
    ) -> Page[Row]:
        """One page in ``query.order``; ``after``/``before`` bound it exclusively.

        With only ``before``, the page is the ``limit`` items just before the cursor
        (the previous page), still returned in the requested order.
        """
        t = self.table
        position = sa.tuple_(t.c.sort_key, t.c.id)
        ascending = query.order == "asc"
        conditions = list(where)
        if query.after is not None:
            bound = sa.tuple_(*(sa.literal(v) for v in self.cursor_key(query.after, "after")))
            conditions.append(position > bound if ascending else position < bound)
        if query.before is not None:
            bound = sa.tuple_(*(sa.literal(v) for v in self.cursor_key(query.before, "before")))
            conditions.append(position < bound if ascending else position > bound)
        # Walk backwards from `before` when it is the only cursor, then flip the result.
        backwards = query.before is not None and query.after is None
        walk_ascending = ascending != backwards
        ordering = (
            (t.c.sort_key.asc(), t.c.id.asc())
            if walk_ascending
            else (t.c.sort_key.desc(), t.c.id.desc())
        )
        statement = sa.select(t).where(*conditions).order_by(*ordering).limit(query.limit + 1)
        result = await conn.execute(statement)
        rows: list[Row] = [dict(r) for r in result.mappings()]
        has_more = len(rows) > query.limit
        rows = rows[: query.limit]
        if backwards:
            rows.reverse()
        return Page(rows=rows, has_more=has_more)


class RecordRepository(Generic[R]):
    """``Repository`` returning typed records: what the per-resource store modules use."""

    def __init__(self, table: sa.Table, kind: str, record: type[R]) -> None:
        self.rows = Repository(table, kind)
        self.table = table
        self.record = record

    async def add(self, conn: AsyncConnection, record: R) -> None:
        await self.rows.insert(conn, record.values())

    async def get(
        self,
        conn: AsyncConnection,
        project: str,
        object_id: str,
        *extra: sa.ColumnElement[bool],
    ) -> R | None:
        row = await self.rows.get(conn, project, object_id, *extra)
        return self.record.from_row(row) if row is not None else None

    async def get_many(
        self, conn: AsyncConnection, project: str, object_ids: Sequence[str]
    ) -> dict[str, R]:
        rows = await self.rows.get_many(conn, project, object_ids)
        return {key: self.record.from_row(row) for key, row in rows.items()}

    async def patch(
        self, conn: AsyncConnection, project: str, object_id: str, **changes: Any
    ) -> bool:
        """Write ``changes`` to the object; False when it does not exist (in ``project``)."""
        return await self.rows.update(conn, project, object_id, changes)

    async def remove(self, conn: AsyncConnection, project: str, object_id: str) -> bool:
        return await self.rows.delete(conn, project, object_id)

    async def page(
        self,
        conn: AsyncConnection,
        where: Sequence[sa.ColumnElement[bool]],
        query: PageQuery,
    ) -> Page[R]:
        page = await self.rows.page(conn, where, query)
        return Page(rows=[self.record.from_row(r) for r in page.rows], has_more=page.has_more)
