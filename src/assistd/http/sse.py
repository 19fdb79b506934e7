"""Server-sent events: the one encoder of run streams and chat-completion streams.

Once a stream has started its status line is sent, so a failure can only be reported in
the stream: an ``event: error`` frame in an Assistants stream (then ``[DONE]``), a
``data: {"error": ...}`` line in a chat stream (and no ``[DONE]``, as OpenAI's).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from assistd.errors import APIError
from assistd.protocol.event_codec import encode_data
from assistd.protocol.events import (
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


def encode(event: StreamEvent, event_id: str | None = None) -> bytes:
    """One event as SSE bytes: ``id:`` (its position in the run's log, for
    ``Last-Event-ID``), ``event:`` (when it has a name) and ``data:`` lines."""
    if isinstance(event, KeepAlive):
        return KEEPALIVE
    head = f"id: {event_id}\n" if event_id is not None else ""
    if event.event:
        return f"{head}event: {event.event}\ndata: {encode_data(event)}\n\n".encode()
    return f"{head}data: {encode_data(event)}\n\n".encode()


async def assistant_stream(
    events: AsyncIterator[tuple[StreamEvent, str | None]], server_error: APIError
) -> AsyncIterator[bytes]:
    """A run's events (each with its log id, if it has one), then ``[DONE]``; an
    unexpected failure becomes an error event."""
    try:
        async for event, event_id in events:
            yield encode(event, event_id)
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
