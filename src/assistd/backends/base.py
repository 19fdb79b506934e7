"""The ``ModelBackend`` interface: one async method that streams a chat completion.

Requests and chunks use Chat Completions' shapes (messages, tools, tool_choice...) because
every upstream the project targets speaks them; backends that do not (the embedded model)
translate inside their own class.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
ErrorCode = Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]


@dataclass
class ChatRequest:
    """One completion request (Chat Completions semantics)."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    reasoning_effort: str | None = None
    seed: int | None = None
    # Other Chat Completions fields a client sent through the gateway (presence_penalty,
    # logit_bias, user...): upstreams receive them as they are; local backends use what
    # they support.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolCallDelta:
    """A piece of one tool call; ``id`` and ``name`` come with the first piece of a call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ChatChunk:
    """What one streamed chunk adds: text, tool-call pieces, the finish reason, usage."""

    text: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


class BackendError(Exception):
    """A failure of the model call, already classified with a run ``last_error`` code."""

    def __init__(self, message: str, *, code: ErrorCode = "server_error") -> None:
        super().__init__(message)
        self.message = message
        self.code: ErrorCode = code


class ModelBackend(Protocol):
    """Streams completions. Capability flags say what the backend can honour."""

    supports_tools: ClassVar[bool]
    supports_streaming: ClassVar[bool]
    supports_json_schema: ClassVar[bool]

    def stream(self, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
        """Yield chunks as the model produces them; raise ``BackendError`` on failure.

        Closing the iterator early (``aclose``) must abort the underlying request.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and other resources."""
        ...
