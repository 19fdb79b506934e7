"""``client.assistants.chat.completions``: Chat Completions answered by an assistant.

Each method forwards to the SDK's own ``client.chat.completions.create`` with ``model``
defaulting to ``""`` (the server then uses the assistant's model) and ``assistant`` merged into
``extra_body``, so validation, retries, errors and the response types are all the SDK's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Literal, overload

if TYPE_CHECKING:
    import openai
    from openai import AsyncStream, Stream
    from openai.types import ChatModel
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessageParam,
    )
    from typing_extensions import Unpack

    from ._options import ChatCompletionOptions

__all__ = [
    "AssistantChat",
    "AssistantCompletions",
    "Assistants",
    "AsyncAssistantChat",
    "AsyncAssistantCompletions",
    "AsyncAssistants",
]


def _with_assistant(assistant: str, extra_body: Mapping[str, object] | None) -> dict[str, object]:
    # The caller's extra_body wins, as the SDK lets extra_body win over named parameters.
    return {"assistant": assistant, **(extra_body or {})}


class AssistantCompletions:
    def __init__(self, client: openai.OpenAI) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: Literal[False] | None = None,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion: ...
    @overload
    def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: Literal[True],
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> Stream[ChatCompletionChunk]: ...
    @overload
    def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: bool,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]: ...
    def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: bool | None = None,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """A chat completion from ``assistant`` (``model``, when given, overrides its model)."""
        completions = self._client.chat.completions
        body = _with_assistant(assistant, extra_body)
        if stream is None:
            # Left out, as the stock call leaves it out, rather than sent as null.
            return completions.create(messages=messages, model=model, extra_body=body, **kwargs)
        return completions.create(
            messages=messages, model=model, stream=stream, extra_body=body, **kwargs
        )

    @overload
    async def acreate(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: Literal[False] | None = None,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion: ...
    @overload
    async def acreate(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: Literal[True],
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> Stream[ChatCompletionChunk]: ...
    @overload
    async def acreate(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: bool,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]: ...
    async def acreate(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: bool | None = None,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """``create`` in a worker thread, so that awaiting it does not block the event loop.

        The thread runs on after the awaiting task is cancelled (a thread cannot be stopped);
        with ``stream=True`` the result is the SDK's synchronous ``Stream``, whose iteration
        blocks: use ``AsyncOpenAI`` to stream inside an event loop.
        """

        def call() -> ChatCompletion | Stream[ChatCompletionChunk]:
            return self.create(
                assistant=assistant,
                messages=messages,
                model=model,
                stream=stream,
                extra_body=extra_body,
                **kwargs,
            )

        return await asyncio.to_thread(call)


class AsyncAssistantCompletions:
    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: Literal[False] | None = None,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion: ...
    @overload
    async def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: Literal[True],
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> AsyncStream[ChatCompletionChunk]: ...
    @overload
    async def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: bool,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]: ...
    async def create(
        self,
        *,
        assistant: str,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | ChatModel = "",
        stream: bool | None = None,
        extra_body: Mapping[str, object] | None = None,
        **kwargs: Unpack[ChatCompletionOptions],
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """A chat completion from ``assistant`` (``model``, when given, overrides its model)."""
        completions = self._client.chat.completions
        body = _with_assistant(assistant, extra_body)
        if stream is None:
            return await completions.create(
                messages=messages, model=model, extra_body=body, **kwargs
            )
        return await completions.create(
            messages=messages, model=model, stream=stream, extra_body=body, **kwargs
        )

    # On the async client the two are one: the note's ``acreate`` spelling works here too.
    acreate = create


class AssistantChat:
    def __init__(self, client: openai.OpenAI) -> None:
        self._client = client

    @cached_property
    def completions(self) -> AssistantCompletions:
        return AssistantCompletions(self._client)


class AsyncAssistantChat:
    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    @cached_property
    def completions(self) -> AsyncAssistantCompletions:
        return AsyncAssistantCompletions(self._client)


class Assistants:
    """``client.assistants``: what assistd answers on behalf of an assistant."""

    def __init__(self, client: openai.OpenAI) -> None:
        self._client = client

    @cached_property
    def chat(self) -> AssistantChat:
        return AssistantChat(self._client)


class AsyncAssistants:
    """``client.assistants`` of ``AsyncOpenAI``."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    @cached_property
    def chat(self) -> AsyncAssistantChat:
        return AsyncAssistantChat(self._client)
