"""Messages: create (also from thread creation), read, modify, list, delete."""

from __future__ import annotations

from typing import Any

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
from assistd.store import messages, threads
from assistd.store.database import Connection, Database
from assistd.store.records import Message
from assistd.store.repository import PageQuery
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
    conn: Connection,
    project: str,
    thread_id: str,
    request: CreateMessageRequest,
    *,
    param: str = "",
) -> Message:
    """Validate and store one message of ``thread_id`` (which the caller checked)."""
    content = _content(request, f"{param}.content".lstrip("."))
    await require_files(conn, project, _file_refs(request, param))
    message = messages.new(
        project,
        thread_id,
        role=request.role,
        content=content,
        attachments=[a.model_dump(mode="json") for a in request.attachments or []],
        metadata=request.metadata or {},
    )
    await messages.add(conn, message)
    await add_to_thread_store(conn, project, thread_id, file_search_files(request.attachments))
    return message


def plain_message(
    project: str, thread_id: str, request: CreateMessageRequest, *, param: str = ""
) -> Message | None:
    """``request`` as a message to store, when storing it needs nothing else (no file to
    check, no attachment for the thread's vector store); None when it does
    (``insert_message`` then). Invalid content raises as ``insert_message`` would."""
    if _file_refs(request, param):
        return None
    return messages.new(
        project,
        thread_id,
        role=request.role,
        content=_content(request, f"{param}.content".lstrip(".")),
        attachments=[],
        metadata=request.metadata or {},
    )


class MessageService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def _require_thread(conn: Connection, project: str, thread_id: str) -> None:
        if await threads.get_for_project(conn, project, thread_id) is None:
            raise not_found("thread", thread_id)

    async def _get(
        self, conn: Connection, project: str, thread_id: str, message_id: str
    ) -> Message:
        await self._require_thread(conn, project, thread_id)
        message = await messages.get_in_thread(conn, project, thread_id, message_id)
        if message is None:
            raise not_found("message", message_id)
        return message

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
            message = await insert_message(conn, project, thread_id, request)
        return to_wire(message)

    async def get(self, project: str, thread_id: str, message_id: str) -> MessageObject:
        async with self.db.read() as conn:
            return to_wire(await self._get(conn, project, thread_id, message_id))

    async def modify(
        self, project: str, thread_id: str, message_id: str, request: ModifyMessageRequest
    ) -> MessageObject:
        async with self.db.write() as conn:
            message = await self._get(conn, project, thread_id, message_id)
            message = await messages.patch(conn, message, **request.given())
        return to_wire(message)

    async def list(
        self, project: str, thread_id: str, query: PageQuery, run_id: str | None = None
    ) -> ListResponse[MessageObject]:
        async with self.db.read() as conn:
            await self._require_thread(conn, project, thread_id)
            page = await messages.list_page(conn, project, thread_id, query, run_id=run_id)
        return list_response(page, to_wire)

    async def delete(self, project: str, thread_id: str, message_id: str) -> DeletedResponse:
        async with self.db.write() as conn:
            await self._get(conn, project, thread_id, message_id)
            await messages.delete(conn, project, message_id)
        return DeletedResponse(id=message_id, object="thread.message.deleted")
