"""/v1/chat/completions

Unlike a run, a completion belongs to its request: when the client goes away the model call
is stopped, whether it was still waiting for the first token, adding up a non-streamed
answer or streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from assistd.http.deps import Project, Svc, json_body
from assistd.http.sse import HEADERS, EventStreamResponse, chat_stream
from assistd.protocol.chat import CreateChatCompletionRequest
from assistd.services.chat_relay import ChatStream

router = APIRouter(tags=["chat"])

T = TypeVar("T")
CLIENT_CLOSED = 499  # nginx's "client closed request": nobody reads it, logs show why


@router.post("/chat/completions", response_model=None)
async def create_chat_completion(
    svc: Svc,
    project: Project,
    request: Request,
    body: Annotated[CreateChatCompletionRequest, Depends(json_body(CreateChatCompletionRequest))],
) -> Response:
    # Where this API is, as the client reached it: an assistant's answer links files.
    api_url = str(request.url.replace(query="", fragment="")).removesuffix("/chat/completions")
    files_url = f"{api_url}/files"
    result = await _unless_disconnected(
        request, svc.chat.create(project, body, files_url=files_url)
    )
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    if isinstance(result, ChatStream):
        return ChatStreamResponse(result)
    return Response(result.model_dump_json(), media_type="application/json")


async def _unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None when the client disconnected first (``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            # The service closes the model call when cancelled (also if we are). wait()
            # does not raise the task's cancellation, only our own.
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        return None
    return task.result()  # raises the service's APIError, if any


async def _disconnect(request: Request) -> None:
    # The body was read in full: the next message is the disconnect (or nothing, ever).
    while (await request.receive())["type"] != "http.disconnect":
        pass


class ChatStreamResponse(EventStreamResponse):
    """SSE of one completion; the model call is closed however the response ends."""

    def __init__(self, stream: ChatStream) -> None:
        super().__init__(
            chat_stream(stream.events()), media_type="text/event-stream", headers=HEADERS
        )
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.stream.aclose()
