"""Stream events as text and back: the SSE ``data:`` payload, and events that cross
processes (the Redis event bus stores an event as its name and this payload)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from assistd.protocol.events import (
    _MESSAGE_EVENTS,
    _RUN_EVENTS,
    _STEP_EVENTS,
    ChatChunkEvent,
    ErrorEvent,
    MessageDelta,
    RunStepDelta,
    StreamEvent,
    ThreadCreated,
)
from assistd.protocol.messages import MessageObject
from assistd.protocol.runs import RunObject, RunStepObject
from assistd.protocol.threads import ThreadObject

# Event name -> (class, the wire model of its data, or None for plain JSON data).
_DECODABLE: dict[str, tuple[type[StreamEvent], type[BaseModel] | None]] = {
    ThreadCreated.event: (ThreadCreated, ThreadObject),
    **{cls.event: (cls, RunObject) for cls in _RUN_EVENTS.values()},
    **{cls.event: (cls, RunStepObject) for cls in _STEP_EVENTS.values()},
    **{cls.event: (cls, MessageObject) for cls in _MESSAGE_EVENTS.values()},
    RunStepDelta.event: (RunStepDelta, None),
    MessageDelta.event: (MessageDelta, None),
    ErrorEvent.event: (ErrorEvent, None),
}


# One encoder for every event: json.dumps with options builds a new one per call, and a
# run's stream is one call per token.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# A string as that encoder writes it.
_string: Callable[[str], str] = json.encoder.encode_basestring


class UnknownEvent(ValueError):
    """An event name no class here carries."""


def encode_data(event: StreamEvent) -> str:
    """What follows ``data:``: the wire object's JSON (or ``[DONE]``)."""
    if type(event) is MessageDelta and (text := _text_piece(event)) is not None:
        return text
    if isinstance(event, ChatChunkEvent):
        return event.data.model_dump_json(exclude=None if event.include_usage else {"usage"})
    data = event.data
    if isinstance(data, BaseModel):
        return data.model_dump_json()
    if isinstance(data, str):
        return data  # [DONE]
    return _COMPACT.encode(data)


def _text_piece(event: MessageDelta) -> str | None:
    """The JSON of the commonest event, a piece of text with nothing else (every token
    of a streamed answer), written from its parts: the same text as the encoder's, at a
    fraction of its cost. None for any other delta."""
    data = event.data
    content = data["delta"]["content"]
    if len(content) != 1:
        return None
    part: dict[str, Any] = content[0]
    text = part.get("text")
    index = part.get("index")
    if (
        len(part) != 3
        or part.get("type") != "text"
        or type(index) is not int
        or type(text) is not dict
        or len(text) != 1
        or type(value := text.get("value")) is not str
    ):
        return None
    return (
        f'{{"id":{_string(data["id"])},"object":"thread.message.delta","delta":{{"content":'
        f'[{{"index":{index},"type":"text","text":{{"value":{_string(value)}}}}}]}}}}'
    )


def decode(
    name: str, data: str, extra: Mapping[str, Callable[[], StreamEvent]] | None = None
) -> StreamEvent:
    """The event ``encode_data`` wrote for an event called ``name``; ``extra`` names
    data-less events of other layers (the bus's control requests)."""
    if extra and name in extra:
        return extra[name]()
    try:
        cls, model = _DECODABLE[name]
    except KeyError:
        raise UnknownEvent(name) from None
    payload: Any = model.model_validate_json(data) if model is not None else json.loads(data)
    return cls(payload)
