"""Threads: create (with initial messages), read, modify, list (an assistd extension),
delete (with their messages and runs; an active run is cancelled first)."""

from __future__ import annotations

import asyncio
from typing import Any

from assistd.errors import not_found
from assistd.events.base import CancelRequest, EventBus, Subscription, control_channel, run_channel
from assistd.executor.state import Changes, Emitter, transition
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.events import ends_run_stream
from assistd.protocol.threads import CreateThreadRequest, ModifyThreadRequest, ThreadObject
from assistd.sandbox.base import Sandbox
from assistd.services.attachments import file_search_files
from assistd.services.listing import list_response
from assistd.services.messages import insert_message, plain_message
from assistd.services.references import THREAD_STORE_EXPIRY, resolve_tool_resources
from assistd.store import messages, runs, threads
from assistd.store.database import Connection, Database
from assistd.store.records import Message, Thread
from assistd.store.repository import PageQuery

# A live worker ends a cancelled run at once; one whose process died is waited for no
# longer than this before the deletion cancels the run itself.
STOP_WAIT_SECONDS = 10.0


def to_wire(thread: Thread) -> ThreadObject:
    return ThreadObject(
        id=thread.id,
        created_at=thread.created_at,
        tool_resources=thread.tool_resources or {},
        metadata=thread.metadata,
    )


async def create_thread(
    conn: Connection, project: str, request: CreateThreadRequest, *, param: str = ""
) -> Thread:
    """Store a thread and its initial messages; ``param`` prefixes error paths."""
    prefix = f"{param}." if param else ""
    resources = await resolve_tool_resources(
        conn, project, request.tool_resources, helper_expires_after=THREAD_STORE_EXPIRY
    )
    thread = await threads.create(
        conn, project, tool_resources=resources, metadata=request.metadata or {}
    )
    for i, message in enumerate(request.messages or []):
        await insert_message(conn, project, thread.id, message, param=f"{prefix}messages[{i}]")
    if any(file_search_files(m.attachments) for m in request.messages or []):
        # Attachments gave the thread a vector store: answer with its tool_resources.
        thread = await threads.get_for_project(conn, project, thread.id) or thread
    return thread


def plain_thread(
    project: str, request: CreateThreadRequest, *, param: str = ""
) -> tuple[Thread, list[Message]] | None:
    """``request``'s thread and messages as records to store in one write, when storing
    them needs nothing else: no tool resources, only messages ``plain_message`` takes;
    None otherwise (``create_thread`` then). Invalid content raises as there."""
    if request.tool_resources is not None:
        return None
    prefix = f"{param}." if param else ""
    thread = threads.new(project, tool_resources={}, metadata=request.metadata or {})
    found: list[Message] = []
    for i, item in enumerate(request.messages or []):
        message = plain_message(project, thread.id, item, param=f"{prefix}messages[{i}]")
        if message is None:
            return None
        found.append(message)
    return thread, found


class ThreadService:
    def __init__(self, db: Database, bus: EventBus, sandbox: Sandbox | None = None) -> None:
        self.db = db
        self.bus = bus
        self.emit = Emitter(bus)
        self.sandbox = sandbox

    async def create(self, project: str, request: CreateThreadRequest) -> ThreadObject:
        async with self.db.write() as conn:
            thread = await create_thread(conn, project, request)
        return to_wire(thread)

    async def get(self, project: str, thread_id: str) -> ThreadObject:
        async with self.db.read() as conn:
            thread = await threads.get_for_project(conn, project, thread_id)
        if thread is None:
            raise not_found("thread", thread_id)
        return to_wire(thread)

    async def list(self, project: str, query: PageQuery) -> ListResponse[ThreadObject]:
        """The project's threads: OpenAI has no such endpoint; the console browses with it."""
        async with self.db.read() as conn:
            page = await threads.list_page(conn, project, query)
        return list_response(page, to_wire)

    async def modify(
        self, project: str, thread_id: str, request: ModifyThreadRequest
    ) -> ThreadObject:
        async with self.db.write() as conn:
            thread = await threads.get_for_project(conn, project, thread_id)
            if thread is None:
                raise not_found("thread", thread_id)
            changes: dict[str, Any] = {}
            if request.metadata is not None:
                changes["metadata"] = request.metadata
            if request.tool_resources is not None:
                changes["tool_resources"] = await resolve_tool_resources(
                    conn,
                    project,
                    request.tool_resources,
                    thread.tool_resources,
                    helper_expires_after=THREAD_STORE_EXPIRY,
                )
            thread = await threads.patch(conn, thread, **changes)
        return to_wire(thread)

    async def delete(self, project: str, thread_id: str) -> DeletedResponse:
        async with self.db.read() as conn:
            if await threads.get_for_project(conn, project, thread_id) is None:
                raise not_found("thread", thread_id)
            active = await runs.active_in_thread(conn, thread_id)
        if active is not None:
            await self._cancel(active)
        async with self.db.write() as conn:
            # No run or message can start on the thread from here on.
            if not await threads.lock_for_delete(conn, project, thread_id):
                raise not_found("thread", thread_id)
            # A run its worker did not end in time, or one started meanwhile.
            leftover = await _cancel_active_run(conn, thread_id)
            # Children first: correct even where the database does not enforce cascades.
            await messages.delete_for_thread(conn, project, thread_id)
            await threads.delete(conn, project, thread_id)
        for changes in leftover:
            await self.emit.changes(changes)
        if leftover:
            await self.bus.publish(control_channel(leftover[0].run.id), CancelRequest())
        if self.sandbox is not None:
            # Its kernel and its /mnt/data go with it (files handed out as File objects stay).
            await self.sandbox.remove(thread_id)
        return DeletedResponse(id=thread_id, object="thread.deleted")

    async def _cancel(self, run_id: str) -> None:
        """Cancel the run as ``POST .../cancel`` does; one that a worker executes is ended
        by that worker (its streams get the text written so far), which this awaits."""
        async with self.bus.subscribe(run_channel(run_id)) as events:
            async with self.db.write() as conn:
                # Queued or waiting: nothing executes it; it ends with the thread.
                waiting = await transition(
                    conn, run_id, "cancelling", only_from=("queued", "requires_action")
                )
                executing = None
                if waiting is None:
                    executing = await transition(
                        conn, run_id, "cancelling", only_from=("in_progress",)
                    )
                if waiting is None and executing is None:
                    run = await runs.get(conn, run_id)
                    if run is None or run.status != "cancelling":
                        return  # it ended meanwhile
            for changes in (waiting, executing):
                if changes is not None:
                    await self.emit.changes(changes)
            if waiting is None:
                # In progress, or cancelling already: its worker ends it.
                await self.bus.publish(control_channel(run_id), CancelRequest())
                await _until_ended(events, STOP_WAIT_SECONDS)


async def _until_ended(events: Subscription, seconds: float) -> None:
    """Wait for the run's last event, at most ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        received = await events.get(left)
        if received is None or ends_run_stream(received.event):
            return


async def _cancel_active_run(conn: Connection, thread_id: str) -> list[Changes]:
    """Move the thread's active run to ``cancelling`` and ``cancelled`` (closing its open
    step and message) in the caller's transaction; the changes to publish once committed."""
    run_id = await runs.active_in_thread(conn, thread_id)
    if run_id is None:
        return []
    steps = [
        await transition(
            conn, run_id, "cancelling", only_from=("queued", "in_progress", "requires_action")
        ),
        await transition(conn, run_id, "cancelled"),
    ]
    return [changes for changes in steps if changes is not None]
