"""Messages: create (also from thread creation), read, modify, list, delete."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock, ids
from assistd.errors import InvalidRequestError, not_found
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.messages import (
    CreateMessageRequest,
    ImageFilePart,
    ImageUrlPart,
    MessageObject,
    ModifyMessageRequest,
)
from assistd.services.attachments import add_to_thread_store, file_search_files
from assistd.services.listing import list_response
from assistd.services.references import require_files
from assistd.services.thread_lock import active_run, lock_thread
from assistd.store import repos
from assistd.store.database import Database
from assistd.store.repository import PageQuery, Row
from assistd.store.wire import message_to_wire as to_wire


def _text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def _content(request: CreateMessageRequest, param: str) -> list[dict[str, Any]]:
    if isinstance(request.content, str):
        if not request.content:
            raise InvalidRequestError(
                f"Invalid '{param}': string too short. Expected a string with minimum length "
                "1, but got an empty string instead.",
                param=param,
                code="string_below_min_length",
            )
        return [_text(request.content)]
    parts: list[dict[str, Any]] = []
    for part in request.content:
        if isinstance(part, ImageFilePart):
            ref = part.image_file
            parts.append(
                {
                    "type": "image_file",
                    "image_file": {"file_id": ref.file_id, "detail": ref.detail or "auto"},
                }
            )
        elif isinstance(part, ImageUrlPart):
            url = part.image_url
            parts.append(
                {"type": "image_url", "image_url": {"url": url.url, "detail": url.detail or "auto"}}
            )
        else:
            parts.append(_text(part.text))
    return parts


def _file_refs(request: CreateMessageRequest, param: str) -> list[tuple[str, str]]:
    refs = [
        (f"{param}.attachments[{i}].file_id", a.file_id)
        for i, a in enumerate(request.attachments or [])
    ]
    if not isinstance(request.content, str):
        refs += [
            (f"{param}.content[{i}].image_file.file_id", part.image_file.file_id)
            for i, part in enumerate(request.content)
            if isinstance(part, ImageFilePart)
        ]
    # Top-level requests name params without a prefix ("attachments[0].file_id").
    return [(p.lstrip("."), f) for p, f in refs]


async def insert_message(
    conn: AsyncConnection,
    project: str,
    thread_id: str,
    request: CreateMessageRequest,
    *,
    param: str = "",
) -> Row:
    """Validate and store one message of ``thread_id`` (which the caller checked)."""
    content = _content(request, f"{param}.content".lstrip("."))
    await require_files(conn, project, _file_refs(request, param))
    message_id = ids.new_id("message")
    now = clock.now()
    row: dict[str, Any] = {
        "id": message_id,
        "sort_key": ids.sort_key_of(message_id, "message"),
        "project": project,
        "created_at": now,
        "thread_id": thread_id,
        "role": request.role,
        "status": "completed",
        "content": content,
        "attachments": [a.model_dump(mode="json") for a in request.attachments or []],
        "metadata": request.metadata or {},
        "assistant_id": None,
        "run_id": None,
        "incomplete_details": None,
        "completed_at": now,
        "incomplete_at": None,
    }
    await repos.messages.insert(conn, row)
    await add_to_thread_store(conn, project, thread_id, file_search_files(request.attachments))
    return row


class MessageService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def _require_thread(conn: AsyncConnection, project: str, thread_id: str) -> None:
        if await repos.threads.get(conn, project, thread_id) is None:
            raise not_found("thread", thread_id)

    async def _get_row(
        self, conn: AsyncConnection, project: str, thread_id: str, message_id: str
    ) -> Row:
        await self._require_thread(conn, project, thread_id)
        row = await repos.messages.get(
            conn, project, message_id, repos.messages.table.c.thread_id == thread_id
        )
        if row is None:
            raise not_found("message", message_id)
        return row

    async def create(
        self, project: str, thread_id: str, request: CreateMessageRequest
    ) -> MessageObject:
        async with self.db.write() as conn:
            await lock_thread(conn, project, thread_id)
            active = await active_run(conn, thread_id)
            if active is not None:
                raise InvalidRequestError(
                    f"Can't add messages to {thread_id} while a run {active} is active."
                )
            row = await insert_message(conn, project, thread_id, request)
        return to_wire(row)

    async def get(self, project: str, thread_id: str, message_id: str) -> MessageObject:
        async with self.db.read() as conn:
            return to_wire(await self._get_row(conn, project, thread_id, message_id))

    async def modify(
        self, project: str, thread_id: str, message_id: str, request: ModifyMessageRequest
    ) -> MessageObject:
        async with self.db.write() as conn:
            row = await self._get_row(conn, project, thread_id, message_id)
            changes = request.given()
            await repos.messages.update(conn, project, message_id, changes)
        return to_wire({**row, **changes})

    async def list(
        self, project: str, thread_id: str, query: PageQuery, run_id: str | None = None
    ) -> ListResponse[MessageObject]:
        table = repos.messages.table
        where: list[sa.ColumnElement[bool]] = [
            table.c.project == project,
            table.c.thread_id == thread_id,
        ]
        if run_id is not None:
            where.append(table.c.run_id == run_id)
        async with self.db.read() as conn:
            await self._require_thread(conn, project, thread_id)
            page = await repos.messages.page(conn, where, query)
        return list_response(page, to_wire)

    async def delete(self, project: str, thread_id: str, message_id: str) -> DeletedResponse:
        async with self.db.write() as conn:
            await self._get_row(conn, project, thread_id, message_id)
            await repos.messages.delete(conn, project, message_id)
        return DeletedResponse(id=message_id, object="thread.message.deleted")
