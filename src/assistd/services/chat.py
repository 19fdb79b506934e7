"""``POST /v1/chat/completions``: the gateway in front of the model registry.

The model name resolves through the same ``BackendRegistry`` as runs, so the embedded model,
any upstream and the test backend all serve Chat Completions through one interface,
``ModelBackend.stream``. A non-streamed completion is the streamed one added up. With
``assistant`` the completion answers as that assistant (``assistant_chat``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import Any, Protocol

from assistd import clock
from assistd.backends.base import BackendError, ChatRequest
from assistd.backends.registry import BackendRegistry, ModelRoute
from assistd.errors import InvalidRequestError
from assistd.ids import ALPHABET
from assistd.protocol.chat import (
    PASSTHROUGH,
    AssistantMessage,
    ChatCompletionObject,
    ChunkDelta,
    CompletionChoice,
    CompletionMessage,
    CompletionUsage,
    CreateChatCompletionRequest,
    FinishReason,
    FunctionCallOut,
    NamedToolChoice,
    ToolCallOut,
    ToolMessage,
)
from assistd.services.assistant_chat import AssistantChat
from assistd.services.chat_relay import ChatStream, Relay, backend_error, relayed
from assistd.store.records import JsonObject

logger = logging.getLogger("assistd.chat")


def new_completion_id() -> str:
    # OpenAI's shape: "chatcmpl-" and 29 random alphanumerics.
    return "chatcmpl-" + "".join(secrets.choice(ALPHABET) for _ in range(29))


class Answer(Protocol):
    """One completion as it goes: a plain one, or an assistant's (``AssistantAnswer``)."""

    model: str

    def deltas(self) -> AsyncGenerator[ChunkDelta, None]: ...

    def finish(self) -> FinishReason: ...

    def usage(self) -> CompletionUsage: ...

    def message(self) -> CompletionMessage: ...


@dataclass
class PlainAnswer:
    """A completion of the model named in the request, relayed as it comes."""

    model: str
    route: ModelRoute
    request: ChatRequest
    relay: Relay

    def deltas(self) -> AsyncGenerator[ChunkDelta, None]:
        return relayed(self.route.backend.stream(self.request), self.relay)

    def finish(self) -> FinishReason:
        return self.relay.finish()

    def usage(self) -> CompletionUsage:
        return self.relay.totals(self.request.messages, self.model)

    def message(self) -> CompletionMessage:
        calls = [
            ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments))
            for c in self.relay.calls
        ]
        return CompletionMessage(content=self.relay.content(), tool_calls=calls or None)


# Counts a finished completion: (project, model, usage).
UsageRecorder = Callable[[str, str, CompletionUsage], Awaitable[None]]


class ChatService:
    def __init__(
        self,
        registry: BackendRegistry,
        assistants: AssistantChat,
        *,
        check_budget: Callable[[str], Awaitable[None]] | None = None,
        record_usage: UsageRecorder | None = None,
    ) -> None:
        self.registry = registry
        self.assistants = assistants
        self.check_budget = check_budget
        self.record_usage = record_usage

    async def create(
        self, project: str, body: CreateChatCompletionRequest, *, files_url: str
    ) -> ChatCompletionObject | ChatStream:
        """Run one completion: the whole object, or a started stream when ``stream`` is set.

        ``files_url`` is the API's ``/files`` URL, for the annotations of an assistant's
        answer.

        Raises:
            APIError: invalid or unsupported parameters, an unknown assistant (400), an
                unknown model (404), or the model call failing before anything was sent
                (429, 400 or 500); the project's token budget spent (429
                ``insufficient_quota``).
        """
        _check(body)
        if self.check_budget is not None:
            await self.check_budget(project)
        completion_id = new_completion_id()
        answer: Answer
        if body.assistant is not None:
            assistant = await self.assistants.load(project, body.assistant)
            route = self.registry.resolve(body.model or assistant.model)
            # The tool_choice stays even without tools in the request: the assistant has some.
            base = replace(backend_request(body, route), tool_choice=wire_tool_choice(body))
            answer = self.assistants.answer(
                assistant,
                body,
                base,
                route,
                files_url=files_url,
                session=completion_id,
            )
            _check_tool_choice(body, answer.names())
            _check_capabilities(answer.model, route, answer.names(), answer.base.response_format)
        else:
            if not body.model:
                raise InvalidRequestError(
                    "Missing required parameter: 'model' (or 'assistant', an assistd extension).",
                    param="model",
                    code="missing_required_parameter",
                )
            route = self.registry.resolve(body.model)
            request = backend_request(body, route)
            _check_tool_choice(body, {t["function"]["name"] for t in request.tools})
            _check_capabilities(body.model, route, request.tools, request.response_format)
            relay = Relay(
                allow_tools=bool(request.tools) and request.tool_choice != "none",
                single_call=body.parallel_tool_calls is False,
            )
            answer = PlainAnswer(body.model, route, request, relay)
        return await self._deliver(project, completion_id, body, answer)

    async def _deliver(
        self, project: str, completion_id: str, body: CreateChatCompletionRequest, answer: Answer
    ) -> ChatCompletionObject | ChatStream:
        record = self.record_usage
        on_usage = None
        if record is not None:
            model = answer.model

            async def on_usage(usage: CompletionUsage) -> None:
                await record(project, model, usage)

        created = clock.now()
        deltas = answer.deltas()
        handed_over = False
        try:
            if body.stream:
                # The first delta is read here: until then a failure is an HTTP status.
                first = await anext(deltas, None)
                stream = ChatStream(
                    id=completion_id,
                    created=created,
                    model=answer.model,
                    include_usage=bool(body.stream_options and body.stream_options.include_usage),
                    deltas=deltas,
                    first=first,
                    finish=answer.finish,
                    usage=answer.usage,
                    on_usage=on_usage,
                )
                handed_over = True  # the stream closes it from now on
                return stream
            async for _ in deltas:
                pass
        except BackendError as exc:
            logger.warning("chat completion %s failed: %s", completion_id, exc.message)
            raise backend_error(exc) from None
        finally:
            # Also on cancellation (the client went away): stop the model call.
            if not handed_over:
                with contextlib.suppress(RuntimeError):
                    await deltas.aclose()
        # Off the event loop: without the backend's usage, this tokenizes the whole prompt.
        usage = await asyncio.to_thread(answer.usage)
        if on_usage is not None:
            await on_usage(usage)
        return ChatCompletionObject(
            id=completion_id,
            created=created,
            model=answer.model,
            choices=[CompletionChoice(message=answer.message(), finish_reason=answer.finish())],
            usage=usage,
        )


def backend_request(body: CreateChatCompletionRequest, route: ModelRoute) -> ChatRequest:
    """The backend's request: the upstream's model name, only the fields that were given."""
    given = body.given()
    tools = [t.model_dump(mode="json", exclude_none=True) for t in body.tools or []]
    tool_choice = wire_tool_choice(body) if tools else None
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


def wire_tool_choice(body: CreateChatCompletionRequest) -> Any:
    """``tool_choice`` as the backend takes it (None when not given)."""
    choice = body.tool_choice
    return choice if choice is None or isinstance(choice, str) else choice.model_dump(mode="json")


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
    _check_messages(body)


def _check_tool_choice(body: CreateChatCompletionRequest, names: Collection[str]) -> None:
    """A named function must be offered; ``required`` needs something to call."""
    choice = body.tool_choice
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


def _check_capabilities(
    model: str, route: ModelRoute, tools: Collection[Any], response_format: JsonObject | None
) -> None:
    backend = route.backend
    if tools and not backend.supports_tools:
        raise InvalidRequestError(f"The model '{model}' does not support tools.", param="tools")
    if (
        response_format is not None
        and response_format.get("type") == "json_schema"
        and not backend.supports_json_schema
    ):
        raise InvalidRequestError(
            f"The model '{model}' does not support 'json_schema' response formats.",
            param="response_format",
        )
