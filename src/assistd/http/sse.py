"""Server-sent events: the one encoder of run streams and chat-completion streams.

Once a stream has started its status line is sent, so a failure can only be reported in
the stream: an ``event: error`` frame in an Assistants stream (then ``[DONE]``), a
``data: {"error": ...}`` line in a chat stream (and no ``[DONE]``, as OpenAI's).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from assistd.errors import APIError
from assistd.observability import metrics
from assistd.observability.asgi import BODY_SEND
from assistd.protocol.event_codec import encode_data
from assistd.protocol.events import (
    ChatDone,
    ChatErrorEvent,
    Done,
    ErrorEvent,
    KeepAlive,
    StreamEvent,
    ends_run_stream,
)

logger = logging.getLogger("assistd.http")

KEEPALIVE = b": keep-alive\n\n"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class LastChunk(bytes):
    """A stream body's last chunk: it goes out with the end of the body, in one write."""


class EventStreamResponse(StreamingResponse):
    """A ``StreamingResponse`` that ends the body with its ``LastChunk`` rather than with
    a chunk of its own: one socket write less per stream. Its start goes through every
    middleware; its chunks straight to the outermost one's ``send`` (``BODY_SEND``): the
    layers in between act on the start only, and a stream is one send per token."""

    _body_send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._body_send = scope.get(BODY_SEND)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        metrics.ACTIVE_STREAMS.inc()
        try:
            await self._send_stream(send)
        finally:
            metrics.ACTIVE_STREAMS.dec()

    async def _send_stream(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        send = self._body_send or send
        ended = False
        async for chunk in self.body_iterator:
            if ended:
                continue  # nothing follows the last chunk; the iterator still runs out
            ended = isinstance(chunk, LastChunk)
            body = chunk.encode(self.charset) if isinstance(chunk, str) else chunk
            await send({"type": "http.response.body", "body": body, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def encode(event: StreamEvent, event_id: str | None = None, data: str | None = None) -> bytes:
    """One event as SSE bytes: ``id:`` (its position in the run's log, for
    ``Last-Event-ID``), ``event:`` (when it has a name) and ``data:`` lines (``data``:
    the event's payload, when already encoded)."""
    if isinstance(event, KeepAlive):
        return KEEPALIVE
    head = f"id: {event_id}\n" if event_id is not None else ""
    if data is None:
        data = encode_data(event)
    if event.event:
        return f"{head}event: {event.event}\ndata: {data}\n\n".encode()
    return f"{head}data: {data}\n\n".encode()


def encode_batch(batch: Sequence[tuple[StreamEvent, str | None]]) -> bytes:
    """Events ready together, as one chunk. Events sharing a wire object (a step's or a
    message's ``created`` and ``in_progress``, a run's ``created`` and ``queued``) share
    its JSON too."""
    if len(batch) == 1:
        return encode(*batch[0])
    encoded: dict[int, str] = {}
    frames = []
    for event, event_id in batch:
        data = None
        if isinstance(event.data, BaseModel):
            # The batch holds every event (and so its data) alive: ids are not reused.
            data = encoded.get(id(event.data))
            if data is None:
                data = encoded[id(event.data)] = encode_data(event)
        frames.append(encode(event, event_id, data))
    return b"".join(frames)


async def assistant_stream(
    batches: AsyncIterator[Sequence[tuple[StreamEvent, str | None]]], server_error: APIError
) -> AsyncIterator[bytes]:
    """A run's events (each with its log id, if it has one), then ``[DONE]``; an
    unexpected failure becomes an error event. The events of a batch (those that were
    ready together) go out as one body chunk, with ``[DONE]`` after the stream's end."""
    done = LastChunk(encode(Done()))
    sent_done = False
    try:
        async for batch in batches:
            body = encode_batch(batch)
            if batch and ends_run_stream(batch[-1][0]):
                # The relay stops after an ending event: [DONE] need not wait for that.
                body, sent_done = LastChunk(body + done), True
            yield body
    except Exception:
        logger.exception("stream failed")
        if sent_done:
            return
        yield encode(ErrorEvent(server_error.to_dict()))
    if not sent_done:
        yield done


async def chat_stream(events: AsyncIterator[StreamEvent]) -> AsyncIterator[bytes]:
    """A completion's chunks, then ``[DONE]``, unless an error event ended it."""
    async for event in events:
        if isinstance(event, ChatErrorEvent):
            yield LastChunk(encode(event))
            return
        yield encode(event)
    yield LastChunk(encode(ChatDone()))


def event_stream_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return EventStreamResponse(body, media_type="text/event-stream", headers=HEADERS)
