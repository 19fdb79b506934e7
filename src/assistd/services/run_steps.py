"""Run steps: list and retrieve, with ``include[]`` gating file-search result content."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from assistd.errors import InvalidRequestError, not_found
from assistd.protocol.common import ListResponse
from assistd.protocol.events import RunStepEvent, StreamEvent
from assistd.protocol.runs import FILE_SEARCH_CONTENT, RunStepObject
from assistd.services.listing import list_response
from assistd.store import run_steps, runs, threads
from assistd.store.database import Connection, Database
from assistd.store.records import RunStep
from assistd.store.repository import PageQuery
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


def step_view(step: RunStep, with_content: bool) -> RunStepObject:
    """The step as the client asked for it: result ``content`` only when included."""
    if with_content or step.type != "tool_calls":
        return step_to_wire(step)
    return step_to_wire(step.but(step_details=without_result_content(step.step_details)))


def event_view(event: StreamEvent, with_content: bool) -> StreamEvent:
    """A stream event as the client asked for it (see ``step_view``)."""
    if with_content or not isinstance(event, RunStepEvent) or event.data.type != "tool_calls":
        return event
    details = without_result_content(event.data.step_details)
    return dataclasses.replace(event, data=event.data.model_copy(update={"step_details": details}))


class RunStepService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _require_run(
        self, conn: Connection, project: str, thread_id: str, run_id: str
    ) -> None:
        if await threads.get_for_project(conn, project, thread_id) is None:
            raise not_found("thread", thread_id)
        if await runs.get_in_thread(conn, project, thread_id, run_id) is None:
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
        async with self.db.read() as conn:
            await self._require_run(conn, project, thread_id, run_id)
            page = await run_steps.list_page(conn, project, run_id, query)
        return list_response(page, lambda step: step_view(step, with_content))

    async def get(
        self, project: str, thread_id: str, run_id: str, step_id: str, include: Sequence[str] = ()
    ) -> RunStepObject:
        with_content = check_include(include)
        async with self.db.read() as conn:
            await self._require_run(conn, project, thread_id, run_id)
            step = await run_steps.get_in_run(conn, project, run_id, step_id)
        if step is None:
            raise not_found("run step", step_id)
        return step_view(step, with_content)
