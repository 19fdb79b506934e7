"""Server-sent events: framing, keep-alives, the closing ``[DONE]``, errors in-band.

Once a stream has started its status line is sent, so a failure can only be reported as
an ``event: error`` frame carrying OpenAI's ``{"error": {...}}`` envelope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from assistd.events.base import Event
from assistd.http.errors import SERVER_ERROR

logger = logging.getLogger("assistd.http")

DONE = b"event: done\ndata: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"


def _json(data: Any) -> str:
    if isinstance(data, BaseModel):
        return data.model_dump_json()
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def frame(event: Event) -> bytes:
    return f"event: {event.event}\ndata: {_json(event.data)}\n\n".encode()


async def _body(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield KEEPALIVE if event.event == "keepalive" else frame(event)
    except Exception:
        logger.exception("stream failed")
        yield frame(Event("error", SERVER_ERROR.to_dict()))
    yield DONE


def sse_response(events: AsyncIterator[Event]) -> StreamingResponse:
    return StreamingResponse(
        _body(events),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
