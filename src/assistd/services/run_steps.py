"""Run steps: list and retrieve, with ``include[]`` gating file-search result content."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from assistd.errors import InvalidRequestError, not_found
from assistd.events.base import Event
from assistd.protocol.common import ListResponse
from assistd.protocol.runs import FILE_SEARCH_CONTENT, RunStepObject
from assistd.services.listing import list_response
from assistd.store import repos, tables
from assistd.store.database import Database
from assistd.store.repository import PageQuery, Row
from assistd.store.wire import step_to_wire


def check_include(include: Sequence[str]) -> bool:
    """Validate ``include[]``; True when file-search result content was asked for."""
    for i, value in enumerate(include):
        if value != FILE_SEARCH_CONTENT:
            raise InvalidRequestError(
                f"Invalid value for 'include[{i}]': '{value[:120]}'. Supported values are: "
                f"'{FILE_SEARCH_CONTENT}'.",
                param=f"include[{i}]",
                code="invalid_value",
            )
    return bool(include)


def without_result_content(details: dict[str, Any]) -> dict[str, Any]:
    """Step details with file-search result ``content`` removed (not asked for)."""
    calls: list[dict[str, Any]] = []
    for call in details.get("tool_calls", []):
        search = call.get("file_search") if call.get("type") == "file_search" else None
        if search and search.get("results"):
            results = [{k: v for k, v in r.items() if k != "content"} for r in search["results"]]
            call = {**call, "file_search": {**search, "results": results}}
        calls.append(call)
    return {**details, "tool_calls": calls}


def step_view(row: Row, with_content: bool) -> RunStepObject:
    """The step as the client asked for it: result ``content`` only when included."""
    if with_content or row["type"] != "tool_calls":
        return step_to_wire(row)
    return step_to_wire({**row, "step_details": without_result_content(row["step_details"])})


def event_view(event: Event, with_content: bool) -> Event:
    """A stream event as the client asked for it (see ``step_view``)."""
    data = event.data
    if with_content or not isinstance(data, RunStepObject) or data.type != "tool_calls":
        return event
    details = without_result_content(data.step_details)
    return Event(event.event, data.model_copy(update={"step_details": details}))


class RunStepService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _require_run(
        self, conn: AsyncConnection, project: str, thread_id: str, run_id: str
    ) -> None:
        if await repos.threads.get(conn, project, thread_id) is None:
            raise not_found("thread", thread_id)
        if (
            await repos.runs.get(conn, project, run_id, tables.runs.c.thread_id == thread_id)
            is None
        ):
            raise not_found("run", run_id)

    async def list(
        self,
        project: str,
        thread_id: str,
        run_id: str,
        query: PageQuery,
        include: Sequence[str] = (),
    ) -> ListResponse[RunStepObject]:
        with_content = check_include(include)
        steps = tables.run_steps
        async with self.db.read() as conn:
            await self._require_run(conn, project, thread_id, run_id)
            page = await repos.run_steps.page(
                conn, [steps.c.project == project, steps.c.run_id == run_id], query
            )
        return list_response(page, lambda row: step_view(row, with_content))

    async def get(
        self, project: str, thread_id: str, run_id: str, step_id: str, include: Sequence[str] = ()
    ) -> RunStepObject:
        with_content = check_include(include)
        async with self.db.read() as conn:
            await self._require_run(conn, project, thread_id, run_id)
            row = await repos.run_steps.get(
                conn, project, step_id, tables.run_steps.c.run_id == run_id
            )
        if row is None:
            raise not_found("run step", step_id)
        return step_view(row, with_content)
