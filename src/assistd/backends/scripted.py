"""A deterministic backend for tests: answers are queued by the test, requests recorded.

Shipped with the package (as pydantic-ai ships its TestModel) so that any test, here or in
a user's project, can drive runs without a real model.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from assistd.backends.base import (
    BackendError,
    ChatChunk,
    ChatRequest,
    ErrorCode,
    FinishReason,
    ToolCallDelta,
    Usage,
)

_TOKENS = re.compile(r"\S+\s*|\s+")


@dataclass
class ScriptedCall:
    name: str
    arguments: dict[str, Any] | str
    id: str | None = None


@dataclass
class Reply:
    """One scripted completion.

    ``text`` streams word by word; ``tool_calls`` stream as an introduction and argument
    pieces; ``error`` raises ``BackendError`` (after ``fail_after`` chunks); ``delay`` waits
    before each chunk (for cancellation tests); ``finish_reason`` defaults from the content.
    """

    text: str = ""
    tool_calls: list[ScriptedCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    error: str | None = None
    error_code: ErrorCode = "server_error"
    fail_after: int = 0
    delay: float = 0.0


def text_reply(text: str, **kwargs: Any) -> Reply:
    return Reply(text=text, **kwargs)


def tool_reply(*calls: tuple[str, dict[str, Any]], **kwargs: Any) -> Reply:
    return Reply(tool_calls=[ScriptedCall(name, args) for name, args in calls], **kwargs)


class ScriptedBackend:
    """Replies in the order queued; an empty queue answers a fixed text.

    Replies queued for a model name are used for requests to that model first, so tests
    sharing one backend each script their own model name and never see another's replies.
    """

    supports_tools: ClassVar[bool] = True
    supports_streaming: ClassVar[bool] = True
    supports_json_schema: ClassVar[bool] = True

    default_text = "This is a scripted answer."

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.by_model: dict[str, deque[Reply]] = {}
        self.requests: list[ChatRequest] = []

    def queue(self, *replies: Reply, model: str | None = None) -> None:
        target = self.replies if model is None else self.by_model.setdefault(model, deque())
        target.extend(replies)

    def requests_for(self, model: str) -> list[ChatRequest]:
        return [r for r in self.requests if r.model == model]

    def _next(self, model: str) -> Reply:
        for source in (self.by_model.get(model), self.replies):
            if source:
                return source.popleft()
        return Reply(text=self.default_text)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        self.requests.append(request)
        reply = self._next(request.model)
        chunks = list(self._chunks(reply, request))
        for i, chunk in enumerate(chunks):
            if reply.error is not None and i == reply.fail_after:
                raise BackendError(reply.error, code=reply.error_code)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            yield chunk
        if reply.error is not None and reply.fail_after >= len(chunks):
            raise BackendError(reply.error, code=reply.error_code)

    def _chunks(self, reply: Reply, request: ChatRequest) -> list[ChatChunk]:
        chunks: list[ChatChunk] = []
        pieces = _TOKENS.findall(reply.text)
        limit = request.max_tokens
        truncated = limit is not None and len(pieces) > limit
        if truncated:
            pieces = pieces[:limit]
        chunks.extend(ChatChunk(text=piece) for piece in pieces)
        for index, call in enumerate(reply.tool_calls):
            args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
            call_id = call.id or f"call_scripted{len(self.requests)}x{index}"
            chunks.append(ChatChunk(tool_calls=[ToolCallDelta(index, call_id, call.name, "")]))
            for start in range(0, len(args), 8):
                piece = args[start : start + 8]
                chunks.append(ChatChunk(tool_calls=[ToolCallDelta(index, arguments=piece)]))
        finish: FinishReason = reply.finish_reason or (
            "length" if truncated else "tool_calls" if reply.tool_calls else "stop"
        )
        prompt = sum(len(str(m.get("content") or "").split()) for m in request.messages)
        usage = reply.usage or Usage(prompt_tokens=prompt, completion_tokens=len(chunks))
        chunks.append(ChatChunk(finish_reason=finish, usage=usage))
        return chunks

    async def aclose(self) -> None:
        return None
