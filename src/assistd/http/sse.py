"""Server-sent events: the one encoder of run streams and chat-completion streams.

Once a stream has started its status line is sent, so a failure can only be reported in
the stream: an ``event: error`` frame in an Assistants stream (then ``[DONE]``), a
``data: {"error": ...}`` line in a chat stream (and no ``[DONE]``, as OpenAI's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from assistd.errors import APIError
from assistd.protocol.events import (
    ChatChunkEvent,
    ChatDone,
    ChatErrorEvent,
    Done,
    ErrorEvent,
    KeepAlive,
    StreamEvent,
)

logger = logging.getLogger("assistd.http")

KEEPALIVE = b": keep-alive\n\n"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _data(event: StreamEvent) -> str:
    if isinstance(event, ChatChunkEvent):
        return event.data.model_dump_json(exclude=None if event.include_usage else {"usage"})
    data = event.data
    if isinstance(data, BaseModel):
        return data.model_dump_json()
    if isinstance(data, str):
        return data  # [DONE]
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode(event: StreamEvent) -> bytes:
    """One event as SSE bytes: ``event:`` (when it has a name) and ``data:`` lines."""
    if isinstance(event, KeepAlive):
        return KEEPALIVE
    if event.event:
        return f"event: {event.event}\ndata: {_data(event)}\n\n".encode()
    return f"data: {_data(event)}\n\n".encode()


async def assistant_stream(
    events: AsyncIterator[StreamEvent], server_error: APIError
) -> AsyncIterator[bytes]:
    """A run's events, then ``[DONE]``; an unexpected failure becomes an error event."""
    try:
        async for event in events:
            yield encode(event)
    except Exception:
        logger.exception("stream failed")
        yield encode(ErrorEvent(server_error.to_dict()))
    yield encode(Done())


async def chat_stream(events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    """A completion's chunks, then ``[DONE]``, unless an error event ended it."""
    async for event in events:
        yield encode(event)
        if isinstance(event, ChatErrorEvent):
            return
    yield encode(ChatDone())


def event_stream_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=HEADERS)
