"""Runs: create (also with a new thread), read, list, modify, cancel, submit tool outputs.

Creating a run locks its thread, so two concurrent creations cannot both see "no active
run"; a partial unique index on active runs backs that up in the database itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from assistd import clock, ids
from assistd.backends.registry import BackendRegistry
from assistd.errors import InvalidRequestError, NotFoundError, not_found
from assistd.events.base import CancelRequest, EventBus, control_channel
from assistd.executor.state import Emitter, end_run, transition
from assistd.protocol.common import ListResponse, dump_response_format, dump_tools
from assistd.protocol.events import StreamEvent, ThreadCreated, run_opened
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
from assistd.queue.base import NewRun, RunQueue
from assistd.services.listing import list_response
from assistd.services.messages import insert_message
from assistd.services.run_streams import RunStream
from assistd.services.thread_lock import active_run, lock_thread
from assistd.services.threads import create_thread, plain_thread
from assistd.services.threads import to_wire as thread_to_wire
from assistd.store import assistants, run_steps, runs, threads
from assistd.store.database import Connection, Database
from assistd.store.records import Message, Run, Thread
from assistd.store.repository import PageQuery
from assistd.store.wire import run_to_wire

DEFAULT_TRUNCATION = {"type": "auto", "last_messages": None}


@dataclass
class RunSettings:
    expires_seconds: int
    stream_idle_seconds: float = 15.0


class RunService:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        queue: RunQueue,
        registry: BackendRegistry,
        settings: RunSettings,
        *,
        check_budget: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        # Raises insufficient_quota when the project spent its token budget (new runs only:
        # a run already going, or submitting tool outputs, is never cut off).
        self.check_budget = check_budget
        self.bus = bus
        self.queue = queue
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

    async def _new_run(
        self,
        conn: Connection,
        project: str,
        run_id: str,
        thread_id: str,
        options: RunOptions,
        additional_instructions: str | None = None,
    ) -> Run:
        assistant = await assistants.get_for_project(conn, project, options.assistant_id)
        if assistant is None:
            raise not_found("assistant", options.assistant_id, param="assistant_id")
        given = options.given()
        model = options.model or assistant.model
        self._resolve_model(model)
        instructions = (
            options.instructions if options.instructions is not None else assistant.instructions
        ) or ""
        if additional_instructions:
            instructions = f"{instructions}\n\n{additional_instructions}".lstrip()
        tools = dump_tools(options.tools) if options.tools is not None else assistant.tools
        tool_choice = options.tool_choice if options.tool_choice is not None else "auto"
        _check_tool_choice(tool_choice, tools)
        sort_key = ids.key_of_own(run_id, "run")
        now = clock.now()
        return Run(
            id=run_id,
            sort_key=sort_key,
            project=project,
            created_at=now,
            thread_id=thread_id,
            assistant_id=assistant.id,
            status="queued",
            started_at=None,
            expires_at=now + self.settings.expires_seconds,
            cancelled_at=None,
            failed_at=None,
            completed_at=None,
            required_action=None,
            last_error=None,
            model=model,
            instructions=instructions,
            tools=tools,
            tool_resources=assistant.tool_resources or {},
            metadata=options.metadata or {},
            temperature=given.get("temperature", assistant.temperature),
            top_p=given.get("top_p", assistant.top_p),
            max_completion_tokens=options.max_completion_tokens,
            max_prompt_tokens=options.max_prompt_tokens,
            truncation_strategy=(
                options.truncation_strategy.model_dump(mode="json")
                if options.truncation_strategy is not None
                else dict(DEFAULT_TRUNCATION)
            ),
            incomplete_details=None,
            usage=None,
            response_format=(
                dump_response_format(options.response_format)
                if options.response_format is not None
                else assistant.response_format
            ),
            tool_choice=(
                tool_choice.model_dump(mode="json", exclude_none=True)
                if isinstance(tool_choice, NamedToolChoice)
                else tool_choice
            ),
            parallel_tool_calls=(
                options.parallel_tool_calls if options.parallel_tool_calls is not None else True
            ),
            reasoning_effort=options.reasoning_effort or assistant.reasoning_effort,
            # The worker lease is the queue's (``_queue_new``).
            worker_id=None,
            lease_until=None,
        )

    def _leased(self, run: Run) -> Run:
        """``run`` held on the queue: its lease goes in its row."""
        lease = self.queue.lease_new(run.id)
        return run.but(worker_id=lease.worker_id, lease_until=lease.until)

    async def _queue_new(self, conn: Connection, run: Run) -> Run:
        """Store the run held on the queue (its lease in its row), in the caller's
        transaction; returns it as stored."""
        run = self._leased(run)
        if not await runs.create(conn, run):
            # The unique index on active runs caught a concurrent creation.
            active = await active_run(conn, run.thread_id)
            raise _thread_busy(run.thread_id, active or "another run")
        return run

    async def create(
        self, project: str, thread_id: str, request: CreateRunRequest
    ) -> tuple[RunObject, RunStream | None]:
        """Create and queue a run; with ``stream`` also an open event stream for it."""
        if self.check_budget is not None:
            await self.check_budget(project)
        run_id = ids.new_id("run")
        async with self._stream(run_id, request.stream) as stream, self.db.write() as conn:
            await lock_thread(conn, project, thread_id)
            active = await active_run(conn, thread_id)
            if active is not None:
                raise _thread_busy(thread_id, active)
            run = await self._new_run(
                conn, project, run_id, thread_id, request, request.additional_instructions
            )
            for i, message in enumerate(request.additional_messages or []):
                await insert_message(
                    conn, project, thread_id, message, param=f"additional_messages[{i}]"
                )
            run = await self._queue_new(conn, run)
        wire = run_to_wire(run)
        await self._publish(run_id, run_opened(wire))
        await self._hand_over(run_id, NewRun(run))
        return wire, stream

    async def create_thread_and_run(
        self, project: str, request: CreateThreadAndRunRequest
    ) -> tuple[RunObject, RunStream | None]:
        if self.check_budget is not None:
            await self.check_budget(project)
        run_id = ids.new_id("run")
        thread_request = request.thread or CreateThreadRequest()
        if request.tool_resources is not None:
            thread_request = thread_request.model_copy(
                update={"tool_resources": request.tool_resources}
            )
        async with self._stream(run_id, request.stream) as stream:
            plain = plain_thread(project, thread_request, param="thread")
            if plain is not None:
                wire = await self._start_plain(project, run_id, *plain, request)
                return wire, stream
            async with self.db.write() as conn:
                thread = await create_thread(conn, project, thread_request, param="thread")
                run = await self._new_run(conn, project, run_id, thread.id, request)
                run = await self._queue_new(conn, run)
        wire = run_to_wire(run)
        await self._publish(run_id, [ThreadCreated(thread_to_wire(thread)), *run_opened(wire)])
        await self._hand_over(run_id, NewRun(run))
        return wire, stream

    async def _start_plain(
        self,
        project: str,
        run_id: str,
        thread: Thread,
        messages: Sequence[Message],
        request: CreateThreadAndRunRequest,
    ) -> RunObject:
        """Store a new thread that needs nothing else (``plain_thread``) with its run, and
        queue the run: the run's reads first, then one write (on PostgreSQL one
        statement: two round trips instead of six on the run's way to its first token).

        A free worker of this process starts the run before that write, which can only
        fail with the database (the thread is new): the run's upstream request goes out
        while it commits. The run is then stored already ``in_progress``, taken by that
        worker (no claim of its own), which goes on once the write has committed and the
        run's first events (``queued`` too) are published (``NewRun.committed``)."""
        async with self.db.read() as conn:
            run = await self._new_run(conn, project, run_id, thread.id, request)
        run = self._leased(run)
        wire = run_to_wire(run)
        running = run.but(status="in_progress", started_at=clock.now())
        committed = asyncio.get_running_loop().create_future()
        started = self.queue.start_now(run_id, NewRun(running, messages, committed))
        stored = False
        try:
            if started:
                await _let_worker_start()
            async with self.db.write_one() as conn:
                await threads.create_with_run(conn, thread, messages, running if started else run)
            await self._publish(run_id, [ThreadCreated(thread_to_wire(thread)), *run_opened(wire)])
            stored = True
        finally:
            # Settled whatever happens (a failure, a cancel): the worker waits for it.
            committed.set_result(stored)
        if not started:
            await self._hand_over(run_id, NewRun(run, messages))
        return wire

    async def _hand_over(self, run_id: str, created: NewRun | None = None) -> None:
        """Queue the run (``created``: a new run as stored, which an in-process worker
        starts from without reading it), then let the executor take it up before this
        request goes on to start its response: the run's database work and upstream
        request overlap with that, rather than waiting for it (about a millisecond off the
        first token)."""
        await self.queue.put(run_id, created)
        await _let_worker_start()

    async def _publish(self, run_id: str, events: Sequence[StreamEvent]) -> None:
        """The run's first events, on its log before a worker can add any: what a stream
        opened by this request starts with, and what one attached later replays."""
        for event in events:
            await self.emit.send(run_id, event)

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

    async def attach(
        self, project: str, thread_id: str, run_id: str, last_event_id: str | None
    ) -> RunStream:
        """A stream of a run already queued (assistd's ``GET .../runs/{id}?stream=true``):
        its retained events from the first, or after ``last_event_id``."""
        async with self.db.read() as conn:
            await self._get_run(conn, project, thread_id, run_id)
        return await RunStream(
            self.db,
            self.bus,
            run_id,
            self.settings.stream_idle_seconds,
            attach=last_event_id or "0",
        ).open()

    # ---- reading ----------------------------------------------------------------------

    async def _get_run(self, conn: Connection, project: str, thread_id: str, run_id: str) -> Run:
        if await threads.get_for_project(conn, project, thread_id) is None:
            raise not_found("thread", thread_id)
        run = await runs.get_in_thread(conn, project, thread_id, run_id)
        if run is None:
            raise not_found("run", run_id)
        return run

    async def get(self, project: str, thread_id: str, run_id: str) -> RunObject:
        async with self.db.read() as conn:
            return run_to_wire(await self._get_run(conn, project, thread_id, run_id))

    async def list(self, project: str, thread_id: str, query: PageQuery) -> ListResponse[RunObject]:
        async with self.db.read() as conn:
            if await threads.get_for_project(conn, project, thread_id) is None:
                raise not_found("thread", thread_id)
            page = await runs.list_page(conn, project, thread_id, query)
        return list_response(page, run_to_wire)

    async def modify(
        self, project: str, thread_id: str, run_id: str, request: ModifyRunRequest
    ) -> RunObject:
        async with self.db.write() as conn:
            run = await self._get_run(conn, project, thread_id, run_id)
            run = await runs.patch(conn, run, **request.given())
        return run_to_wire(run)

    # ---- control ----------------------------------------------------------------------

    async def cancel(self, project: str, thread_id: str, run_id: str) -> RunObject:
        async with self.db.write() as conn:
            # Lock first, then read (as submit_tool_outputs does): on PostgreSQL a worker
            # may otherwise claim the run or park it in requires_action after the read,
            # and who ends the run depends on its status.
            await runs.lock(conn, run_id)
            run = await self._get_run(conn, project, thread_id, run_id)
            if run.status == "cancelling":
                return run_to_wire(run)
            executing = run.status == "in_progress"
            changes = await transition(conn, run_id, "cancelling", only_from=(run.status,))
            if changes is None:
                raise InvalidRequestError(
                    f"Cannot cancel run with status '{run.status}'.", param=None
                )
        await self.emit.changes(changes)
        if executing:
            # The worker executing it stops the model call and ends the run.
            await self.bus.publish(control_channel(run_id), CancelRequest())
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
            await runs.lock(conn, run_id)
            run = await self._get_run(conn, project, thread_id, run_id)
            outputs = _match_outputs(run, request)
            await _store_outputs(conn, run, outputs)
            changes = await transition(conn, run_id, "queued", required_action=None)
            if changes is None:
                raise _no_outputs_expected(run.status)
            await self.queue.reserve(conn, run_id)
        await self.emit.run(changes.run)
        await self._hand_over(run_id)
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


def _match_outputs(run: Run, request: SubmitToolOutputsRequest) -> dict[str, str]:
    if run.status != "requires_action":
        raise _no_outputs_expected(run.status)
    assert run.required_action is not None  # set whenever the run requires action
    expected = [c["id"] for c in run.required_action["submit_tool_outputs"]["tool_calls"]]
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


async def _store_outputs(conn: Connection, run: Run, outputs: dict[str, str]) -> None:
    for step in await run_steps.awaiting_outputs(conn, run.id):
        calls = []
        for call in step.step_details["tool_calls"]:
            if call["id"] in outputs:
                call = {**call, "function": {**call["function"], "output": outputs[call["id"]]}}
            calls.append(call)
        await run_steps.set_details(conn, step, {**step.step_details, "tool_calls": calls})


async def _let_worker_start() -> None:
    """Two turns of the loop: in the first the in-process worker takes a run just put and
    starts its task, which runs in the second up to its upstream request (whose answer it
    then awaits while this request goes on)."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
