"""Runs: create (also with a new thread), read, list, modify, cancel, submit tool outputs.

Creating a run locks its thread, so two concurrent creations cannot both see "no active
run"; a partial unique index on active runs backs that up in the database itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock, ids
from assistd.backends.registry import BackendRegistry
from assistd.errors import InvalidRequestError, NotFoundError, not_found
from assistd.events.base import Event, EventBus, control_channel
from assistd.executor.state import Emitter, end_run, lease_deadline, transition
from assistd.executor.worker import Worker
from assistd.protocol.common import ListResponse, dump_response_format, dump_tools
from assistd.protocol.runs import (
    CreateRunRequest,
    CreateThreadAndRunRequest,
    ModifyRunRequest,
    NamedToolChoice,
    RunObject,
    RunOptions,
    SubmitToolOutputsRequest,
)
from assistd.protocol.threads import CreateThreadRequest
from assistd.services.listing import list_response
from assistd.services.messages import insert_message
from assistd.services.run_streams import RunStream
from assistd.services.thread_lock import active_run, lock_thread
from assistd.services.threads import create_thread_row
from assistd.services.threads import to_wire as thread_to_wire
from assistd.store import repos, tables
from assistd.store.database import Database
from assistd.store.repository import PageQuery, Row
from assistd.store.wire import run_to_wire

DEFAULT_TRUNCATION = {"type": "auto", "last_messages": None}


@dataclass
class RunSettings:
    expires_seconds: int
    lease_seconds: float
    stream_idle_seconds: float = 15.0


class RunService:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        worker: Worker,
        registry: BackendRegistry,
        settings: RunSettings,
    ) -> None:
        self.db = db
        self.bus = bus
        self.worker = worker
        self.registry = registry
        self.settings = settings
        self.emit = Emitter(bus)

    # ---- creation ---------------------------------------------------------------------

    def _resolve_model(self, model: str) -> None:
        try:
            self.registry.resolve(model)
        except NotFoundError:
            raise InvalidRequestError(
                f"The requested model '{model}' does not exist.",
                param="model",
                code="model_not_found",
            ) from None

    async def _new_run_row(
        self,
        conn: AsyncConnection,
        project: str,
        run_id: str,
        thread_id: str,
        options: RunOptions,
        additional_instructions: str | None = None,
    ) -> dict[str, Any]:
        assistant = await repos.assistants.get(conn, project, options.assistant_id)
        if assistant is None:
            raise not_found("assistant", options.assistant_id, param="assistant_id")
        given = options.given()
        model = options.model or assistant["model"]
        self._resolve_model(model)
        instructions = (
            options.instructions if options.instructions is not None else assistant["instructions"]
        ) or ""
        if additional_instructions:
            instructions = f"{instructions}\n\n{additional_instructions}".lstrip()
        tools = dump_tools(options.tools) if options.tools is not None else assistant["tools"]
        tool_choice = options.tool_choice if options.tool_choice is not None else "auto"
        _check_tool_choice(tool_choice, tools)
        now = clock.now()
        return {
            "id": run_id,
            "sort_key": ids.sort_key_of(run_id, "run"),
            "project": project,
            "created_at": now,
            "thread_id": thread_id,
            "assistant_id": assistant["id"],
            "status": "queued",
            "started_at": None,
            "expires_at": now + self.settings.expires_seconds,
            "cancelled_at": None,
            "failed_at": None,
            "completed_at": None,
            "required_action": None,
            "last_error": None,
            "model": model,
            "instructions": instructions,
            "tools": tools,
            "tool_resources": assistant["tool_resources"] or {},
            "metadata": options.metadata or {},
            "temperature": given.get("temperature", assistant["temperature"]),
            "top_p": given.get("top_p", assistant["top_p"]),
            "max_completion_tokens": options.max_completion_tokens,
            "max_prompt_tokens": options.max_prompt_tokens,
            "truncation_strategy": (
                options.truncation_strategy.model_dump(mode="json")
                if options.truncation_strategy is not None
                else dict(DEFAULT_TRUNCATION)
            ),
            "incomplete_details": None,
            "usage": None,
            "response_format": (
                dump_response_format(options.response_format)
                if options.response_format is not None
                else assistant["response_format"]
            ),
            "tool_choice": (
                tool_choice.model_dump(mode="json", exclude_none=True)
                if isinstance(tool_choice, NamedToolChoice)
                else tool_choice
            ),
            "parallel_tool_calls": (
                options.parallel_tool_calls if options.parallel_tool_calls is not None else True
            ),
            "reasoning_effort": options.reasoning_effort or assistant["reasoning_effort"],
            "worker_id": self.worker.worker_id,
            "lease_until": lease_deadline(self.settings.lease_seconds),
        }

    async def _insert(self, conn: AsyncConnection, row: dict[str, Any]) -> None:
        try:
            async with conn.begin_nested():
                await repos.runs.insert(conn, row)
        except IntegrityError:
            # The unique index on active runs caught a concurrent creation.
            active = await active_run(conn, row["thread_id"])
            raise _thread_busy(row["thread_id"], active or "another run") from None

    async def create(
        self, project: str, thread_id: str, request: CreateRunRequest
    ) -> tuple[RunObject, RunStream | None]:
        """Create and queue a run; with ``stream`` also an open event stream for it."""
        run_id = ids.new_id("run")
        async with self._stream(run_id, request.stream) as stream, self.db.write() as conn:
            await lock_thread(conn, project, thread_id)
            active = await active_run(conn, thread_id)
            if active is not None:
                raise _thread_busy(thread_id, active)
            row = await self._new_run_row(
                conn, project, run_id, thread_id, request, request.additional_instructions
            )
            for i, message in enumerate(request.additional_messages or []):
                await insert_message(
                    conn, project, thread_id, message, param=f"additional_messages[{i}]"
                )
            await self._insert(conn, row)
        await self.worker.enqueue(run_id)
        return run_to_wire(row), stream

    async def create_thread_and_run(
        self, project: str, request: CreateThreadAndRunRequest
    ) -> tuple[RunObject, Event, RunStream | None]:
        run_id = ids.new_id("run")
        thread_request = request.thread or CreateThreadRequest()
        if request.tool_resources is not None:
            thread_request = thread_request.model_copy(
                update={"tool_resources": request.tool_resources}
            )
        async with self._stream(run_id, request.stream) as stream, self.db.write() as conn:
            thread = await create_thread_row(conn, project, thread_request, param="thread")
            row = await self._new_run_row(conn, project, run_id, thread["id"], request)
            await self._insert(conn, row)
        await self.worker.enqueue(run_id)
        created = Event("thread.created", thread_to_wire(thread))
        return run_to_wire(row), created, stream

    @asynccontextmanager
    async def _stream(self, run_id: str, wanted: bool | None) -> AsyncIterator[RunStream | None]:
        """A stream subscribed before the run is queued (so no event is missed); closed
        again if the request fails before the stream is handed over."""
        if not wanted:
            yield None
            return
        stream = await RunStream(
            self.db, self.bus, run_id, self.settings.stream_idle_seconds
        ).open()
        try:
            yield stream
        except BaseException:
            await stream.close()
            raise

    # ---- reading ----------------------------------------------------------------------

    async def _get_row(
        self, conn: AsyncConnection, project: str, thread_id: str, run_id: str
    ) -> Row:
        if await repos.threads.get(conn, project, thread_id) is None:
            raise not_found("thread", thread_id)
        row = await repos.runs.get(conn, project, run_id, tables.runs.c.thread_id == thread_id)
        if row is None:
            raise not_found("run", run_id)
        return row

    async def get(self, project: str, thread_id: str, run_id: str) -> RunObject:
        async with self.db.read() as conn:
            return run_to_wire(await self._get_row(conn, project, thread_id, run_id))

    async def list(self, project: str, thread_id: str, query: PageQuery) -> ListResponse[RunObject]:
        runs = tables.runs
        async with self.db.read() as conn:
            if await repos.threads.get(conn, project, thread_id) is None:
                raise not_found("thread", thread_id)
            page = await repos.runs.page(
                conn, [runs.c.project == project, runs.c.thread_id == thread_id], query
            )
        return list_response(page, run_to_wire)

    async def modify(
        self, project: str, thread_id: str, run_id: str, request: ModifyRunRequest
    ) -> RunObject:
        async with self.db.write() as conn:
            row = await self._get_row(conn, project, thread_id, run_id)
            changes = request.given()
            await repos.runs.update(conn, project, run_id, changes)
        return run_to_wire({**row, **changes})

    # ---- control ----------------------------------------------------------------------

    async def cancel(self, project: str, thread_id: str, run_id: str) -> RunObject:
        async with self.db.write() as conn:
            row = await self._get_row(conn, project, thread_id, run_id)
            if row["status"] == "cancelling":
                return run_to_wire(row)
            # The status read above may be stale (a worker can claim a queued run meanwhile,
            # on PostgreSQL): compare-and-set per source status to know who ends the run.
            changes = await transition(
                conn, run_id, "cancelling", only_from=("queued", "requires_action")
            )
            executing = changes is None
            if changes is None:
                changes = await transition(conn, run_id, "cancelling", only_from=("in_progress",))
            if changes is None:
                raise InvalidRequestError(
                    f"Cannot cancel run with status '{row['status']}'.", param=None
                )
        await self.emit.changes(changes)
        if executing:
            # The worker executing it stops the model call and ends the run.
            await self.bus.publish(control_channel(run_id), Event("cancel", None))
        else:
            # Nothing is executing a queued or waiting run: end it here.
            await end_run(self.db, self.emit, run_id, "cancelled", only_from=("cancelling",))
        return run_to_wire(changes.run)

    async def submit_tool_outputs(
        self, project: str, thread_id: str, run_id: str, request: SubmitToolOutputsRequest
    ) -> tuple[RunObject, RunStream | None]:
        async with self._stream(run_id, request.stream) as stream, self.db.write() as conn:
            # Lock first, then read: a concurrent submission is checked against the run
            # as the first one left it.
            await conn.execute(
                sa.select(tables.runs.c.id).where(tables.runs.c.id == run_id).with_for_update()
            )
            row = await self._get_row(conn, project, thread_id, run_id)
            outputs = _match_outputs(row, request)
            await _store_outputs(conn, row, outputs)
            changes = await transition(
                conn,
                run_id,
                "queued",
                required_action=None,
                worker_id=self.worker.worker_id,
                lease_until=lease_deadline(self.settings.lease_seconds),
            )
            if changes is None:
                raise _no_outputs_expected(row["status"])
        await self.emit.run(changes.run)
        await self.worker.enqueue(run_id)
        return run_to_wire(changes.run), stream


def _thread_busy(thread_id: str, run_id: str) -> InvalidRequestError:
    return InvalidRequestError(f"Thread {thread_id} already has an active run {run_id}.")


def _no_outputs_expected(status: str) -> InvalidRequestError:
    return InvalidRequestError(f'Runs in status "{status}" do not accept tool outputs.')


def _check_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> None:
    if not isinstance(choice, NamedToolChoice):
        return
    if choice.type == "function":
        name = choice.function.name if choice.function else None
        if name is None:
            raise InvalidRequestError(
                "Missing required parameter: 'tool_choice.function'.",
                param="tool_choice.function",
                code="missing_required_parameter",
            )
        names = {t["function"]["name"] for t in tools if t["type"] == "function"}
        if name not in names:
            raise InvalidRequestError(
                f"Invalid value for 'tool_choice': no function named '{name}' in tools.",
                param="tool_choice",
                code="invalid_value",
            )
    elif not any(t["type"] == choice.type for t in tools):
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': the run has no '{choice.type}' tool.",
            param="tool_choice",
            code="invalid_value",
        )


def _match_outputs(row: Row, request: SubmitToolOutputsRequest) -> dict[str, str]:
    if row["status"] != "requires_action":
        raise _no_outputs_expected(row["status"])
    expected = [c["id"] for c in row["required_action"]["submit_tool_outputs"]["tool_calls"]]
    outputs: dict[str, str] = {}
    for i, item in enumerate(request.tool_outputs):
        if not item.tool_call_id:
            raise InvalidRequestError(
                f"Missing required parameter: 'tool_outputs[{i}].tool_call_id'.",
                param=f"tool_outputs[{i}].tool_call_id",
                code="missing_required_parameter",
            )
        if item.tool_call_id not in expected:
            raise InvalidRequestError(
                f"Invalid 'tool_outputs[{i}].tool_call_id': no tool call with id "
                f"'{item.tool_call_id}' awaits an output in this run.",
                param=f"tool_outputs[{i}].tool_call_id",
                code="invalid_value",
            )
        if item.tool_call_id in outputs:
            raise InvalidRequestError(
                f"Invalid 'tool_outputs[{i}].tool_call_id': duplicate output for "
                f"'{item.tool_call_id}'.",
                param=f"tool_outputs[{i}].tool_call_id",
                code="invalid_value",
            )
        outputs[item.tool_call_id] = item.output or ""
    missing = [call_id for call_id in expected if call_id not in outputs]
    if missing:
        raise InvalidRequestError(
            f"Expected tool outputs for call_ids {expected}, got {list(outputs)}. All outputs "
            "must be submitted in a single request.",
            param="tool_outputs",
        )
    return outputs


async def _store_outputs(conn: AsyncConnection, run: Row, outputs: dict[str, str]) -> None:
    steps = tables.run_steps
    result = await conn.execute(
        sa.select(steps).where(
            steps.c.run_id == run["id"],
            steps.c.type == "tool_calls",
            steps.c.status == "in_progress",
        )
    )
    for step in result.mappings():
        details = dict(step["step_details"])
        calls = []
        for call in details["tool_calls"]:
            if call["id"] in outputs:
                call = {**call, "function": {**call["function"], "output": outputs[call["id"]]}}
            calls.append(call)
        details["tool_calls"] = calls
        await conn.execute(
            sa.update(steps).where(steps.c.id == step["id"]).values(step_details=details)
        )
