"""``POST /v1/chat/completions``: the gateway in front of the model registry.

The model name resolves through the same ``BackendRegistry`` as runs, so the embedded model,
any upstream and the test backend all serve Chat Completions through one interface,
``ModelBackend.stream``. A non-streamed completion is the streamed one added up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator
from typing import Any

from assistd import clock
from assistd.backends.base import BackendError, ChatChunk, ChatRequest
from assistd.backends.registry import BackendRegistry, ModelRoute
from assistd.errors import InvalidRequestError
from assistd.ids import ALPHABET
from assistd.protocol.chat import (
    PASSTHROUGH,
    AssistantMessage,
    ChatCompletionObject,
    CompletionChoice,
    CompletionMessage,
    CreateChatCompletionRequest,
    FunctionCallOut,
    NamedToolChoice,
    ToolCallOut,
    ToolMessage,
)
from assistd.services.chat_relay import ChatStream, Relay, backend_error

logger = logging.getLogger("assistd.chat")


def new_completion_id() -> str:
    # OpenAI's shape: "chatcmpl-" and 29 random alphanumerics.
    return "chatcmpl-" + "".join(secrets.choice(ALPHABET) for _ in range(29))


class ChatService:
    def __init__(self, registry: BackendRegistry) -> None:
        self.registry = registry

    async def create(self, body: CreateChatCompletionRequest) -> ChatCompletionObject | ChatStream:
        """Run one completion: the whole object, or a started stream when ``stream`` is set.

        Raises:
            APIError: invalid or unsupported parameters (400), an unknown model (404), or
                the model call failing before anything was sent (429, 400 or 500).
        """
        _check(body)
        route = self.registry.resolve(body.model)
        _check_capabilities(body, route)
        request = backend_request(body, route)
        relay = Relay(
            allow_tools=bool(request.tools) and request.tool_choice != "none",
            single_call=body.parallel_tool_calls is False,
        )
        chunks = route.backend.stream(request)
        completion_id, created = new_completion_id(), clock.now()
        handed_over = False
        try:
            if body.stream:
                # The first chunk is read here: until then a failure is an HTTP status.
                first = await anext(chunks, None)
                stream = ChatStream(
                    id=completion_id,
                    created=created,
                    model=body.model,
                    include_usage=bool(body.stream_options and body.stream_options.include_usage),
                    relay=relay,
                    chunks=chunks,
                    first=first,
                    messages=request.messages,
                )
                handed_over = True  # the stream closes it from now on
                return stream
            await _drain(chunks, relay)
        except BackendError as exc:
            logger.warning("chat completion %s failed: %s", completion_id, exc.message)
            raise backend_error(exc) from None
        finally:
            # Also on cancellation (the client went away): stop the model call.
            if not handed_over:
                with contextlib.suppress(RuntimeError):
                    await chunks.aclose()
        calls = [
            ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments))
            for c in relay.calls
        ]
        message = CompletionMessage(content=relay.content(), tool_calls=calls or None)
        # Off the event loop: without the backend's usage, this tokenizes the whole prompt.
        usage = await asyncio.to_thread(relay.totals, request.messages, body.model)
        return ChatCompletionObject(
            id=completion_id,
            created=created,
            model=body.model,
            choices=[CompletionChoice(message=message, finish_reason=relay.finish())],
            usage=usage,
        )


async def _drain(chunks: AsyncGenerator[ChatChunk, None], relay: Relay) -> None:
    async for chunk in chunks:
        relay.feed(chunk)


def backend_request(body: CreateChatCompletionRequest, route: ModelRoute) -> ChatRequest:
    """The backend's request: the upstream's model name, only the fields that were given."""
    given = body.given()
    tools = [t.model_dump(mode="json", exclude_none=True) for t in body.tools or []]
    tool_choice: Any = None
    if tools and body.tool_choice is not None:
        tool_choice = (
            body.tool_choice
            if isinstance(body.tool_choice, str)
            else body.tool_choice.model_dump(mode="json")
        )
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    extra = {name: value for name, value in given.items() if name in PASSTHROUGH}
    # exclude_unset: the messages as the client wrote them, explicit nulls included.
    messages = [m.model_dump(mode="json", exclude_unset=True) for m in body.messages]
    # max_tokens is the deprecated name; when both are sent the newer one wins.
    limit = body.max_completion_tokens
    return ChatRequest(
        model=route.upstream_model,
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        # Without tools these two mean nothing, and some upstreams refuse them.
        parallel_tool_calls=body.parallel_tool_calls if tools else None,
        response_format=(
            body.response_format.model_dump(mode="json", by_alias=True, exclude_none=True)
            if body.response_format is not None
            else None
        ),
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=limit if limit is not None else body.max_tokens,
        stop=stop or None,
        reasoning_effort=body.reasoning_effort,
        seed=body.seed,
        extra=extra,
    )


def _unsupported(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Unsupported value: '{param}' {message}", param=param, code="unsupported_value"
    )


def _check(body: CreateChatCompletionRequest) -> None:
    """What the schema cannot say: unsupported options and the conversation's shape."""
    if body.n is not None and body.n > 1:
        raise _unsupported("n", "must be 1: this server generates one choice per request.")
    if body.logprobs:
        raise _unsupported("logprobs", "is not supported by this server; omit it or send false.")
    if body.top_logprobs:
        raise _unsupported("top_logprobs", "is not supported by this server (no logprobs).")
    if body.functions is not None or body.function_call is not None:
        param = "functions" if body.functions is not None else "function_call"
        raise _unsupported(param, "is deprecated and not supported; use 'tools' instead.")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    _check_tool_choice(body)
    _check_messages(body)


def _check_tool_choice(body: CreateChatCompletionRequest) -> None:
    choice = body.tool_choice
    names = {t.function.name for t in body.tools or []}
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': function '{choice.function.name}' is not "
            "in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    if choice == "required" and not names:
        raise InvalidRequestError(
            "Invalid value for 'tool_choice': 'required' needs at least one tool in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )


def _check_messages(body: CreateChatCompletionRequest) -> None:
    """OpenAI's rules for tool turns: every call answered, every tool message a reply."""
    pending: dict[str, int] = {}  # unanswered call id → index of the assistant message
    for index, message in enumerate(body.messages):
        if isinstance(message, ToolMessage):
            if message.tool_call_id not in pending:
                raise InvalidRequestError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceding message with 'tool_calls'.",
                    param=f"messages[{index}].role",
                )
            del pending[message.tool_call_id]
            continue
        if pending:
            break
        if isinstance(message, AssistantMessage):
            if message.content is None and not message.tool_calls:
                raise InvalidRequestError(
                    f"Invalid value for 'messages[{index}].content': expected a string, got null.",
                    param=f"messages[{index}].content",
                    code="invalid_type",
                )
            pending = {call.id: index for call in message.tool_calls or []}
    if pending:
        index = min(pending.values())
        raise InvalidRequestError(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(pending)}",
            param=f"messages[{index}].role",
        )


def _check_capabilities(body: CreateChatCompletionRequest, route: ModelRoute) -> None:
    backend = route.backend
    if body.tools and not backend.supports_tools:
        raise InvalidRequestError(
            f"The model '{body.model}' does not support tools.", param="tools"
        )
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_schema" and not backend.supports_json_schema:
        raise InvalidRequestError(
            f"The model '{body.model}' does not support 'json_schema' response formats.",
            param="response_format",
        )
