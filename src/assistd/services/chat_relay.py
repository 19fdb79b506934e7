"""Backend chunks → Chat Completions chunks, and the totals a whole completion is made of.

Every backend streams ``ChatChunk`` objects; the gateway re-states them in OpenAI's shapes
so that clients see the same stream whatever serves the model: one id and ``created`` for
all chunks, the role first, a tool call's id/type/name only on its first piece, its index
counted by the gateway, the finish reason on its own chunk and usage last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from assistd.backends.base import BackendError, ChatChunk, FinishReason, ToolCallDelta, Usage
from assistd.errors import APIError, InvalidRequestError, RateLimitError
from assistd.protocol.chat import (
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    CompletionUsage,
    FunctionDelta,
    ToolCallDeltaOut,
)
from assistd.protocol.events import ChatChunkEvent, ChatErrorEvent
from assistd.tokenizer import count_tokens

logger = logging.getLogger("assistd.chat")

MESSAGE_OVERHEAD = 4  # per-message framing tokens, as OpenAI documents for chat models
INTERNAL_ERROR = "The server had an error while processing your request. Sorry about that!"


def backend_error(exc: BackendError) -> APIError:
    """The client-facing error for a failed model call (status, type and code)."""
    if exc.code == "rate_limit_exceeded":
        return RateLimitError(exc.message, code="rate_limit_exceeded")
    if exc.code == "invalid_prompt":
        return InvalidRequestError(exc.message, code="invalid_prompt")
    return APIError(exc.message, code="server_error")


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")[:24]


@dataclass
class RelayedCall:
    id: str
    name: str
    arguments: str = ""


@dataclass
class Relay:
    """Follows one completion: translates each chunk and keeps what it added up to.

    ``allow_tools`` False (``tool_choice: "none"``) and ``single_call`` (``parallel_tool_calls:
    false``) are enforced here too, for backends that do not honour them themselves. Calls
    of a ``hidden`` name (an assistant's built-in tools, which the server runs) are kept in
    ``builtin`` and never relayed.
    """

    allow_tools: bool = True
    single_call: bool = False
    hidden: frozenset[str] = frozenset()
    text: list[str] = field(default_factory=list)
    calls: list[RelayedCall] = field(default_factory=list)
    builtin: list[RelayedCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    _slots: dict[int, int | None] = field(default_factory=dict)  # backend index → ours
    _hidden: dict[int, RelayedCall] = field(default_factory=dict)  # backend index → call

    def feed(self, chunk: ChatChunk) -> ChunkDelta | None:
        """Record ``chunk``; the delta to send for it, or None when it adds nothing to show."""
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        pieces = [p for p in map(self._piece, chunk.tool_calls) if p is not None]
        if chunk.text:
            self.text.append(chunk.text)
        if not chunk.text and not pieces:
            return None
        return ChunkDelta(content=chunk.text or None, tool_calls=pieces or None)

    def _piece(self, delta: ToolCallDelta) -> ToolCallDeltaOut | None:
        held = self._hidden.get(delta.index)
        if held is not None:
            held.arguments += delta.arguments
            return None
        if delta.index not in self._slots and delta.name in self.hidden:
            held = RelayedCall(delta.id or new_call_id(), delta.name or "", delta.arguments)
            self._hidden[delta.index] = held
            self.builtin.append(held)
            return None
        if delta.index not in self._slots:
            keep = self.allow_tools and not (self.single_call and self.calls)
            self._slots[delta.index] = len(self.calls) if keep else None
            if not keep:
                return None
            call = RelayedCall(delta.id or new_call_id(), delta.name or "", delta.arguments)
            self.calls.append(call)
            return ToolCallDeltaOut(
                index=len(self.calls) - 1,
                id=call.id,
                type="function",
                function=FunctionDelta(name=call.name, arguments=delta.arguments),
            )
        slot = self._slots[delta.index]
        if slot is None:
            return None
        call = self.calls[slot]
        # A name that comes after the call's first piece is passed on once, as it came.
        name = delta.name if delta.name and not call.name else None
        call.name = call.name or name or ""
        if not delta.arguments and name is None:
            return None
        call.arguments += delta.arguments
        return ToolCallDeltaOut(
            index=slot, function=FunctionDelta(name=name, arguments=delta.arguments)
        )

    def finish(self) -> FinishReason:
        """The finish reason, consistent with what was relayed.

        A backend that stopped normally after calls is reported as ``tool_calls`` (clients
        branch on it), and ``tool_calls`` without any relayed call (all dropped) as ``stop``.
        """
        reason: FinishReason = self.finish_reason or "stop"
        if self.calls and reason == "stop":
            return "tool_calls"
        if not self.calls and reason == "tool_calls":
            return "stop"
        return reason

    def content(self) -> str | None:
        """The message text; null when the answer is only tool calls, as OpenAI's is."""
        text = "".join(self.text)
        return None if not text and self.calls else text

    def produced(self, model: str) -> int:
        """Completion tokens: the backend's count, or the tokenizer's for what it sent
        (only the answer: cheap enough for the event loop)."""
        if self.usage is not None:
            return self.usage.completion_tokens
        made = [*self.calls, *self.builtin]
        return count_tokens("".join(self.text) + "".join(c.name + c.arguments for c in made), model)

    def totals(self, messages: list[dict[str, Any]], model: str) -> CompletionUsage:
        """The backend's usage, or OpenAI's tokenizer estimate when it reported none."""
        usage = self.usage
        if usage is None:
            prompt = sum(MESSAGE_OVERHEAD + count_tokens(_text(m), model) for m in messages)
            usage = Usage(prompt_tokens=prompt + 3, completion_tokens=self.produced(model))
        return CompletionUsage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content) if content else ""
    calls = message.get("tool_calls")
    return text + (json.dumps(calls) if calls else "")


async def relayed(
    chunks: AsyncGenerator[ChatChunk, None], relay: Relay
) -> AsyncGenerator[ChunkDelta, None]:
    """The client's deltas of one completion; closing this closes the model call."""
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            delta = relay.feed(chunk)
            if delta is not None:
                yield delta


@dataclass
class ChatStream:
    """A started streamed completion: its deltas, the first already read.

    Reading the first delta before answering lets a failure of the model call (rate limit,
    bad prompt, unreachable upstream) be a plain HTTP error; after that, failures can only
    be reported in the stream. ``aclose`` stops the model call however far it got.
    ``finish`` and ``usage`` are read once the deltas are spent (``usage`` may tokenize
    the prompt: it runs in a thread). ``on_usage`` is given the usage of a stream that
    ended normally (the project's usage accounting; this module stays free of the store).
    """

    id: str
    created: int
    model: str
    include_usage: bool
    deltas: AsyncGenerator[ChunkDelta, None]
    first: ChunkDelta | None
    finish: Callable[[], FinishReason]
    usage: Callable[[], CompletionUsage]
    on_usage: Callable[[CompletionUsage], Awaitable[None]] | None = None

    def _chunk(self, delta: ChunkDelta, finish: FinishReason | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )

    async def events(self) -> AsyncIterator[ChatChunkEvent | ChatErrorEvent]:
        """Chunks in OpenAI's order; an error event means the stream failed and ends there."""
        async with contextlib.aclosing(self.deltas):
            try:
                async for delta in self._all():
                    yield self._event(self._chunk(delta))
            except BackendError as exc:
                logger.warning("chat completion %s failed mid-stream: %s", self.id, exc.message)
                yield ChatErrorEvent(backend_error(exc).to_dict())
                return
            except Exception:
                logger.exception("chat completion %s failed mid-stream", self.id)
                yield ChatErrorEvent(APIError(INTERNAL_ERROR).to_dict())
                return
        yield self._event(self._chunk(ChunkDelta(), self.finish()))
        if not self.include_usage and self.on_usage is None:
            return
        usage = await asyncio.to_thread(self.usage)
        if self.on_usage is not None:
            try:
                await self.on_usage(usage)
            except Exception:
                # The answer was delivered: a failed count must not turn it into an error.
                logger.exception("chat completion %s: usage not recorded", self.id)
        if self.include_usage:
            yield self._event(
                ChatCompletionChunk(
                    id=self.id, created=self.created, model=self.model, choices=[], usage=usage
                )
            )

    def _event(self, chunk: ChatCompletionChunk) -> ChatChunkEvent:
        return ChatChunkEvent(chunk, include_usage=self.include_usage)

    async def _all(self) -> AsyncIterator[ChunkDelta]:
        first = self.first
        if first is not None and first.tool_calls and first.content is None:
            # A call-only answer opens with the role and its first call (content null).
            yield ChunkDelta(role="assistant", tool_calls=first.tool_calls)
        else:
            yield ChunkDelta(role="assistant", content="")
            if first is not None:
                yield first
        async for delta in self.deltas:
            yield delta

    async def aclose(self) -> None:
        """Close the deltas, and so the model call (a no-op once they finished)."""
        with contextlib.suppress(RuntimeError):  # still running in a task being cancelled
            await self.deltas.aclose()
