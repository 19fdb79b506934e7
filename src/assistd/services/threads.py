"""Threads: create (with initial messages), read, modify, delete (with their messages)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock, ids
from assistd.errors import not_found
from assistd.protocol.common import DeletedResponse
from assistd.protocol.threads import CreateThreadRequest, ModifyThreadRequest, ThreadObject
from assistd.sandbox.base import Sandbox
from assistd.services.attachments import file_search_files
from assistd.services.messages import insert_message
from assistd.services.references import THREAD_STORE_EXPIRY, resolve_tool_resources
from assistd.store import repos
from assistd.store.database import Database
from assistd.store.repository import Row


def to_wire(row: Row) -> ThreadObject:
    return ThreadObject(
        id=row["id"],
        created_at=row["created_at"],
        tool_resources=row["tool_resources"] or {},
        metadata=row["metadata"],
    )


async def create_thread_row(
    conn: AsyncConnection, project: str, request: CreateThreadRequest, *, param: str = ""
) -> Row:
    """Store a thread and its initial messages; ``param`` prefixes error paths."""
    prefix = f"{param}." if param else ""
    resources = await resolve_tool_resources(
        conn, project, request.tool_resources, helper_expires_after=THREAD_STORE_EXPIRY
    )
    thread_id = ids.new_id("thread")
    row: dict[str, Any] = {
        "id": thread_id,
        "sort_key": ids.sort_key_of(thread_id, "thread"),
        "project": project,
        "created_at": clock.now(),
        "tool_resources": resources,
        "metadata": request.metadata or {},
    }
    await repos.threads.insert(conn, row)
    for i, message in enumerate(request.messages or []):
        await insert_message(conn, project, thread_id, message, param=f"{prefix}messages[{i}]")
    if any(file_search_files(m.attachments) for m in request.messages or []):
        # Attachments gave the thread a vector store: answer with its tool_resources.
        row = dict(await repos.threads.get(conn, project, thread_id) or row)
    return row


class ThreadService:
    def __init__(self, db: Database, sandbox: Sandbox | None = None) -> None:
        self.db = db
        self.sandbox = sandbox

    async def create(self, project: str, request: CreateThreadRequest) -> ThreadObject:
        async with self.db.write() as conn:
            row = await create_thread_row(conn, project, request)
        return to_wire(row)

    async def get(self, project: str, thread_id: str) -> ThreadObject:
        async with self.db.read() as conn:
            row = await repos.threads.get(conn, project, thread_id)
        if row is None:
            raise not_found("thread", thread_id)
        return to_wire(row)

    async def modify(
        self, project: str, thread_id: str, request: ModifyThreadRequest
    ) -> ThreadObject:
        async with self.db.write() as conn:
            row = await repos.threads.get(conn, project, thread_id)
            if row is None:
                raise not_found("thread", thread_id)
            changes: dict[str, Any] = {}
            if request.metadata is not None:
                changes["metadata"] = request.metadata
            if request.tool_resources is not None:
                changes["tool_resources"] = await resolve_tool_resources(
                    conn,
                    project,
                    request.tool_resources,
                    row["tool_resources"],
                    helper_expires_after=THREAD_STORE_EXPIRY,
                )
            await repos.threads.update(conn, project, thread_id, changes)
        return to_wire({**row, **changes})

    async def delete(self, project: str, thread_id: str) -> DeletedResponse:
        messages = repos.messages.table
        async with self.db.write() as conn:
            # Children first: correct even where the database does not enforce cascades.
            await conn.execute(
                sa.delete(messages).where(
                    messages.c.thread_id == thread_id, messages.c.project == project
                )
            )
            if not await repos.threads.delete(conn, project, thread_id):
                raise not_found("thread", thread_id)
        if self.sandbox is not None:
            # Its kernel and its /mnt/data go with it (files handed out as File objects stay).
            await self.sandbox.remove(thread_id)
        return DeletedResponse(id=thread_id, object="thread.deleted")
