"""Threads: create (with initial messages), read, modify, delete (with their messages)."""

from __future__ import annotations

from typing import Any

from assistd.errors import not_found
from assistd.protocol.common import DeletedResponse
from assistd.protocol.threads import CreateThreadRequest, ModifyThreadRequest, ThreadObject
from assistd.sandbox.base import Sandbox
from assistd.services.attachments import file_search_files
from assistd.services.messages import insert_message
from assistd.services.references import THREAD_STORE_EXPIRY, resolve_tool_resources
from assistd.store import messages, threads
from assistd.store.database import Connection, Database
from assistd.store.records import Thread


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


class ThreadService:
    def __init__(self, db: Database, sandbox: Sandbox | None = None) -> None:
        self.db = db
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
        async with self.db.write() as conn:
            # Children first: correct even where the database does not enforce cascades.
            await messages.delete_for_thread(conn, project, thread_id)
            if not await threads.delete(conn, project, thread_id):
                raise not_found("thread", thread_id)
        if self.sandbox is not None:
            # Its kernel and its /mnt/data go with it (files handed out as File objects stay).
            await self.sandbox.remove(thread_id)
        return DeletedResponse(id=thread_id, object="thread.deleted")
